"""Layers import downward only: no import circle inside mvlib, function-level imports
included (a circle hides in them: a job's entry point that imports the command line)."""

from __future__ import annotations

import ast
from pathlib import Path

import mvlib

ROOT = Path(mvlib.__file__).parent


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: the mvlib modules it imports anywhere in its body}. `from pkg import name`
    counts as importing pkg.name when that is a module, else pkg."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            else:
                continue
            graph[mod] |= {t for t in targets if t in files and t != mod}
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_detector_finds_a_planted_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.c import g\n")
    (pkg / "c.py").write_text("from .a import x\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    graph = import_graph(pkg)
    assert graph["pkg.d"] == {"pkg.a"}
    assert circles(graph) == [{"pkg.a", "pkg.b", "pkg.c"}]


def test_mvlib_has_no_import_circle() -> None:
    graph = import_graph()
    assert len(graph) > 40 and graph["mvlib.executors.sweep"]  # it read the package
    assert circles(graph) == []


# The layers, bottom first: a module imports from its own layer and those below, never above.
LAYERS = ("core", "models", "data", "synth", "experiment", "methods", "engine", "instruments",
          "executors", "study", "tools")


def layer(module: str) -> int:
    """The rank of a module's layer; the command line (mvlib.__main__) sits on top."""
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return len(LAYERS)
    return LAYERS.index(parts[1])


def test_every_module_sits_in_a_layer_folder() -> None:
    flat = sorted(p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert flat == []
    folders = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
    assert folders == sorted(LAYERS)


def test_imports_go_downward_only() -> None:
    graph = import_graph()
    upward = {m: sorted(t for t in targets if layer(t) > layer(m))
              for m, targets in graph.items() if m != "mvlib"}
    assert {m: t for m, t in upward.items() if t} == {}


def test_the_layer_check_finds_an_upward_import() -> None:
    graph = {"mvlib.data.store": {"mvlib.engine.train"}, "mvlib.engine.train": set()}
    assert [m for m, ts in graph.items() if any(layer(t) > layer(m) for t in ts)] == \
        ["mvlib.data.store"]
