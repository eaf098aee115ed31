"""The static site (`make book`): built once from the committed notebooks and the README, served
on 127.0.0.1 by the standard library, and read in a real browser (Debian's Chromium, driven by
Playwright; .ci/chromium.sh installs it, `playwright install` is never run).

Every page loads with no console error, no failed request and nothing fetched from outside
127.0.0.1; every image shows; the sidebar lists the notebooks in order and "next" walks them in
that order; the results page's links land on their headings. A full-page screenshot of each
page goes to runs/site-screenshots/ (for the CI log). Without /usr/bin/chromium the browser
tests skip and say so; the build and the static link checks still run.

MVLIB_SITE_SOURCE (a notebooks folder, default notebooks/) builds another copy of the site, e.g.
one whose notebooks were edited, into MVLIB_SITE_OUT (default runs/book/html).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE = Path(os.environ.get("MVLIB_SITE_SOURCE", REPO / "notebooks")).resolve()
SITE = Path(os.environ.get("MVLIB_SITE_OUT", REPO / "runs" / "book" / "html")).resolve()
SCREENSHOTS = REPO / "runs" / "site-screenshots"
CHROMIUM = Path("/usr/bin/chromium")
HOST = "127.0.0.1"

NOTEBOOKS = sorted(p.stem for p in SOURCE.glob("[0-9][0-9]_*.ipynb")
                   if not p.name.endswith(".running.ipynb"))
PAGES = ["index", *NOTEBOOKS, "readme", "guide", "references"]  # the sidebar's order, "next"'s
RESULTS = "09_results"

# pytest-playwright 0.10's own base_url fixture, under pytest 9 (not ours to fix)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Session-scoped fixtures defined as instance methods")

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent: install Debian's Chromium (.ci/chromium.sh) to run the "
           "browser tests of the site")


def build_command(source: Path = SOURCE, out: Path = SITE) -> list[str]:
    """What `make book` runs: a fresh build (-E) in which any warning is an error."""
    return [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-n", "-q",
            "-b", "html", "-d", str(out.parent / "doctrees"), str(source), str(out)]


@pytest.fixture(scope="module")
def site() -> Path:
    """The site, built once for this module (fresh, so that every warning is seen)."""
    t0 = time.perf_counter()
    done = subprocess.run(build_command(), cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"the site's build failed ({' '.join(build_command())}):\n"
                    f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}")
    print(f"site built in {time.perf_counter() - t0:.1f} s: {SITE}")
    return SITE


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site quietly; every request that the server could not answer (a 404 for a
    favicon or a missing file) is kept on the server (`failures`)."""

    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        if str(code).isdigit() and int(code) >= 400:
            self.server.failures.append(f"HTTP {code}: {self.path}")


@pytest.fixture(scope="module")
def httpd(site):
    """The site served by http.server on a free port of 127.0.0.1."""
    handler = functools.partial(_Handler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer((HOST, 0), handler)
    httpd.failures = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def server(httpd):
    """The base URL of the served site; the test fails on any request the server refused
    while it ran (seen on the server, so also requests the page's own events do not show)."""
    del httpd.failures[:]
    yield f"http://{HOST}:{httpd.server_address[1]}/"
    time.sleep(0.2)  # a request the browser sent last (the favicon) reaches the server
    assert not httpd.failures, "\n".join(httpd.failures)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments, with Debian's Chromium instead of a downloaded one."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM),
            "args": ["--disable-dev-shm-usage", "--disable-gpu"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900},
            "service_workers": "block"}


class Recorder:
    """Everything a page did that it should not: console errors, uncaught exceptions, failed
    or refused requests, and every request that would leave 127.0.0.1 (stopped here)."""

    def __init__(self, page, navigates: bool = False):
        self.navigates = navigates  # going to the next page cancels what is still loading
        self.errors: list[str] = []
        self.outside: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.route("**/*", self._route)

    def _console(self, msg):
        if msg.type == "error":
            self.errors.append(f"console error: {msg.text} ({msg.location.get('url')})")

    def _failed(self, request):
        if self.navigates and request.failure == "net::ERR_ABORTED":
            return
        if urlsplit(request.url).hostname == HOST:
            self.errors.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response):
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}: {response.url}")

    def _route(self, route):
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname != HOST:
            self.outside.append(url)
            route.abort()
        else:
            route.continue_()


def test_the_site_builds_from_every_numbered_notebook(site):
    assert NOTEBOOKS and NOTEBOOKS[0].startswith("00_"), NOTEBOOKS
    numbers = [int(n[:2]) for n in NOTEBOOKS]
    assert numbers == list(range(len(numbers))), f"not numbered 00.. in a row: {NOTEBOOKS}"
    for name in PAGES:
        assert (site / f"{name}.html").is_file(), name
    assert not list(site.glob("*.running.html")), "a notebook being written became a page"


class _Links(HTMLParser):
    """Ids and links (href) of one HTML page."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


@functools.cache
def _parsed(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_every_link_between_pages_lands_on_an_element(site):
    """No link of the site points to a notebook (.ipynb) or to a page or id that is not there
    (checked in the HTML files; the results page again in the browser below)."""
    problems = []
    for page in sorted(site.glob("*.html")):
        for href in _parsed(page).links:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            if parts.path.endswith(".ipynb") and "_sources/" not in parts.path:
                problems.append(f"{page.name}: {href} (a notebook, not its page)")
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.exists():
                problems.append(f"{page.name}: {href} (no such file)")
            elif parts.fragment and target.suffix == ".html" \
                    and unquote(parts.fragment) not in _parsed(target).ids:
                problems.append(f"{page.name}: {href} (no element with that id)")
    assert not problems, "\n".join(problems)


def test_the_papers_tables_are_html_tables(site):
    """Tables 1-7 are shown as HTML tables (DataFrames), not only as images."""
    where = {"03_model_variants": "Table 1", "04_regularizers": "Table 2",
             "06_without_heatmaps": "Table 3", "05_gradient_blending": "Table 4",
             "07_tables": "Tables 1-6", "08_balancing_methods": "Table 7"}
    for name, tables in where.items():
        if name not in NOTEBOOKS:
            continue
        html = (site / f"{name}.html").read_text(encoding="utf-8")
        assert any("<table" in o for o in _outputs(html)), f"{name} ({tables}): no HTML table"


def _outputs(html: str) -> list[str]:
    """The HTML of each code cell's output area of a notebook page."""
    return [chunk.split('<div class="cell ')[0]
            for chunk in html.split('<div class="cell_output')[1:]]


def test_every_figure_of_a_notebook_has_a_number_and_a_caption(site):
    """A figure a notebook draws is a numbered, captioned figure ("Fig. 02.3: ...")."""
    bare = []
    for name in NOTEBOOKS:
        for k, out in enumerate(_outputs((site / f"{name}.html").read_text(encoding="utf-8"))):
            images, figures = out.count("<img"), out.count("<figure")
            numbers = re.findall(r'<span class="caption-number">Fig\. (\d\d)\.\d+ </span>', out)
            if images and (figures < images or len(numbers) < images
                           or any(n != name[:2] for n in numbers)):
                bare.append(f"{name}: output {k}: {images} image(s), {len(numbers)} numbered")
    assert not bare, "\n".join(bare)


def test_no_table_cell_is_cut_short_or_shows_nan(site):
    """Displayed tables show every cell whole, rounded, with a dash for a missing value."""
    bad = []
    for name in NOTEBOOKS:
        html = (site / f"{name}.html").read_text(encoding="utf-8")
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S):
            text = re.sub(r"<[^>]+>", "", cell).strip()
            decimals = re.fullmatch(r"-?\d+\.(\d+)", text)
            unrounded = decimals and len(decimals.group(1)) > 3 and \
                len(decimals.group(1).lstrip("0")) > 3  # 0.000378 keeps 3 significant digits
            if text in ("NaN", "nan", "None") or text.endswith(("...", "\u2026")) or unrounded:
                bad.append(f"{name}: {text[-60:]!r}")
    assert not bad, f"{len(bad)} cells:\n" + "\n".join(bad[:40])


def test_the_landing_page_says_what_the_paper_claims_and_what_we_find(site):
    html = (site / "index.html").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    findings = re.search(r"<!-- mvlib:findings -->\n- \*\*(.*?)\*\*", readme).group(1)
    for text in ("What the paper claims", "What this companion finds", findings,
                 "Where to start", "07_interaction.png"):
        assert text in html, text


def _results_links_in_source() -> int:
    """How many links to another notebook the results notebook's outputs hold."""
    path = SOURCE / f"{RESULTS}.ipynb"
    if not path.exists():
        return 0
    nb = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps([o for c in nb["cells"] for o in c.get("outputs", [])])
    return len(re.findall(r"\]\([0-9][0-9]_\w+\.ipynb#[\w-]+\)", text))


@needs_chromium
@pytest.mark.parametrize("name", PAGES)
def test_page_loads_offline_with_every_image_and_no_error(name, server, page):
    rec = Recorder(page)
    page.goto(urljoin(server, f"{name}.html"), wait_until="load")
    # images outside the viewport may be lazy: ask for all of them, then wait
    page.evaluate("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function("[...document.images].every(i => i.complete)", timeout=30_000)
    page.wait_for_load_state("networkidle")
    broken = page.evaluate(
        "[...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    assert not broken, f"images that do not show: {broken}"
    assert not rec.outside, f"requests to outside {HOST}: {rec.outside}"
    assert not rec.errors, "\n".join(rec.errors)


@needs_chromium
def test_the_sidebar_lists_the_notebooks_in_order(server, page):
    page.goto(urljoin(server, "index.html"))
    hrefs = page.eval_on_selector_all(
        ".bd-sidebar-primary nav a.reference.internal", "els => els.map(e => e.href)")
    listed = [Path(urlsplit(h).path).stem for h in hrefs]
    notebooks = [n for n in listed if n in NOTEBOOKS]
    assert notebooks == NOTEBOOKS, listed
    # and the titles read 00 .. 09 in the same order
    titles = page.eval_on_selector_all(
        ".bd-sidebar-primary nav a.reference.internal", "els => els.map(e => e.textContent)")
    numbers = [t.strip()[:2] for t in titles if re.match(r"\s*\d\d ", t)]
    assert numbers == [n[:2] for n in NOTEBOOKS], titles


@needs_chromium
def test_next_walks_every_page_in_order(server, page):
    walked = []
    url = urljoin(server, "index.html")
    while url and len(walked) <= len(PAGES):
        page.goto(url)
        walked.append(Path(urlsplit(page.url).path).stem)
        nxt = page.query_selector("a.right-next")
        url = nxt.evaluate("e => e.href") if nxt else None
    assert walked == PAGES


@needs_chromium
def test_the_results_page_links_land_on_their_headings(server, page):
    expected = _results_links_in_source()
    if not expected:
        pytest.skip(f"{RESULTS}.ipynb has no executed links to the notebooks yet (its results "
                    "table is an output)")
    rec = Recorder(page, navigates=True)
    page.goto(urljoin(server, f"{RESULTS}.html"))
    hrefs = page.eval_on_selector_all("article a[href]", "els => els.map(e => e.href)")
    here = urlsplit(page.url).path
    targets = [h for h in hrefs if urlsplit(h).hostname == HOST and urlsplit(h).fragment
               and urlsplit(h).path != here
               and re.match(r"[0-9][0-9]_", Path(urlsplit(h).path).name)]
    assert len(targets) == expected, (len(targets), expected, targets)
    by_page: dict[str, set[str]] = {}
    for h in targets:
        parts = urlsplit(h)
        assert parts.path.endswith(".html"), f"{h}: not rewritten to the notebook's page"
        by_page.setdefault(h.split("#")[0], set()).add(unquote(parts.fragment))
    missing = []
    for url, ids in sorted(by_page.items()):
        for anchor in sorted(ids):
            page.goto(f"{url}#{anchor}")
            if not page.evaluate("id => document.getElementById(id) !== null", anchor):
                missing.append(f"{url}#{anchor}")
    assert not missing, f"links that land on no element: {missing}"
    assert not rec.outside and not rec.errors, rec.outside + rec.errors


@needs_chromium
def test_math_is_rendered_by_the_served_katex(server, page):
    """The paper's formulas (notebook 05's weights, the dependence share) render as math."""
    rec = Recorder(page)
    page.goto(urljoin(server, "05_gradient_blending.html"), wait_until="load")
    page.wait_for_function("document.querySelectorAll('.katex').length > 0", timeout=10_000)
    assert page.evaluate("document.querySelectorAll('.katex-error').length") == 0
    assert page.evaluate("[...document.querySelectorAll('.math')].every("
                         "m => m.querySelector('.katex'))")
    assert not rec.outside and not rec.errors, rec.outside + rec.errors


@needs_chromium
def test_pages_open_on_results_with_the_code_collapsed(server, page):
    """No code shows until its toggle is opened, and the results page's first screen holds
    its first verdict table."""
    for name in NOTEBOOKS:
        page.goto(urljoin(server, f"{name}.html"), wait_until="load")
        shown = page.evaluate("[...document.querySelectorAll('div.cell_input')]"
                              ".filter(e => e.checkVisibility()).length")
        assert shown == 0, f"{name}: {shown} code cells shown"
        toggles = page.locator("details.above-input")
        assert toggles.count() > 0
        toggles.first.locator("summary").click()  # a toggle opens its code
        assert page.evaluate("document.querySelector('details.above-input div.cell_input')"
                             ".checkVisibility()")
    page.goto(urljoin(server, f"{RESULTS}.html"), wait_until="load")
    top = page.evaluate("document.querySelector('article table').getBoundingClientRect().top")
    assert top < page.viewport_size["height"], f"the first table starts at {top} px"


@needs_chromium
@pytest.mark.parametrize("name", ["index", RESULTS, "07_tables"])
def test_a_phone_reads_the_page_without_sideways_scrolling(name, server, browser):
    """At 390 px the page itself does not scroll sideways; a wide table scrolls in its box."""
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  service_workers="block")
    try:
        page = context.new_page()
        page.goto(urljoin(server, f"{name}.html"), wait_until="load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name}: {width} px wide at 390"
    finally:
        context.close()


@needs_chromium
def test_figures_are_drawn_near_their_own_size(server, page):
    """At a laptop's 1280 px a notebook figure keeps at least two thirds of its size (its
    text stays legible; the page gives the figures the width of the right-hand column)."""
    small = []
    for name in NOTEBOOKS:
        page.goto(urljoin(server, f"{name}.html"), wait_until="load")
        page.evaluate("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=30_000)
        for natural, shown in page.evaluate(
                "[...document.querySelectorAll('article img')]"
                ".map(i => [i.naturalWidth, i.getBoundingClientRect().width])"):
            if natural and shown / natural < 2 / 3:
                small.append(f"{name}: {natural} px drawn at {shown:.0f}")
    assert not small, "\n".join(small)
