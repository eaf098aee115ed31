#!/usr/bin/env bash
# Debian's Chromium for the site tests (tests/test_site.py drives it with Playwright through
# executable_path=/usr/bin/chromium; `playwright install`, which downloads a browser of its own,
# is never run). Idempotent: installs only when /usr/bin/chromium is missing, as root (CI
# machines), then prints the version. Without it the site tests skip and say why.
set -euo pipefail
if [[ ! -x /usr/bin/chromium ]]; then
    echo "installing chromium (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends chromium fonts-liberation >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends chromium fonts-liberation >/dev/null; }
fi
# (Debian's launcher may print a harmless shell warning from /etc/chromium.d/dev-shm)
/usr/bin/chromium --version 2>/dev/null
