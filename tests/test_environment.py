"""The project's set-up files agree with each other."""

import re
import tomllib

from mvlib.core.paths import REPO


def _pins_from_pyproject():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    return dict(r.split("==") for r in reqs)


def _pins_from_environment_yml():
    pins = {}
    for line in (REPO / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def test_environment_yml_and_pyproject_agree():
    py, env = _pins_from_pyproject(), _pins_from_environment_yml()
    assert py, "no pins found in pyproject.toml"
    assert py == env


def test_python_versions_agree():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = (REPO / "environment.yml").read_text()
    assert ">=3.11,<3.12" in meta["requires-python"] and "python=3.11" in env
    assert "PYTHON ?= python3.11" in (REPO / "Makefile").read_text()


def test_every_dependency_is_pinned_exactly():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for req in meta["dependencies"] + meta["optional-dependencies"]["dev"]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][^\s]*", req), req


def test_makefile_installs_the_torch_pin_of_pyproject():
    pins = _pins_from_pyproject()
    makefile = (REPO / "Makefile").read_text()
    assert f"torch=={pins['torch']}" in makefile
    assert f"torchvision=={pins['torchvision']}" in makefile


def test_ci_runs_the_readme_test_command_and_fails_with_it():
    ci = (REPO / ".ci" / "run").read_text()
    assert "set -e" in ci and "make test" in ci and "|| true" not in ci
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make reproduce" in readme
