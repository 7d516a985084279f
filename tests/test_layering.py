"""Imports point one way: math <- assembly <- data/evaluation <- harness, and no two modules import each other.

Every import of every module under ``glue/`` is read from its source (function-local imports included),
so a lazy import cannot hide a wrong-way edge. A new package must be placed in ``LAYERS`` first.
Inside a package, the module graph (``glue.select.oracle`` -> ``glue.select.raypool``) has no cycle either
(``module_cycles``): two modules that need each other share a third that both import.
"""

from __future__ import annotations

import ast
import itertools
import sys
from pathlib import Path

GLUE = Path(__file__).resolve().parents[1] / "glue"

# Lowest first. A package may import packages of its own layer or below, never above; inside a layer
# the order given is the allowed direction (a package imports only those listed before it).
LAYERS: list[tuple[str, list[str]]] = [
    ("core", ["errors", "kernels", "paths", "safety", "lazy", "yamlfile", "registry", "arch"]),
    ("io", ["io"]),
    ("math and assembly", ["merge", "cluster", "mix"]),
    ("data and evaluation", ["zoo", "eval", "surrogate", "pretrained"]),
    ("harness", ["record", "select", "recipe", "cli", "bench", "__main__", "__init__"]),
]
RANK = {pkg: i for i, (_, pkgs) in enumerate(LAYERS) for pkg in pkgs}
ORDER = {pkg: i for i, pkg in enumerate(p for _, pkgs in LAYERS for p in pkgs)}


def package_edges(root: Path = GLUE) -> dict[tuple[str, str], list[str]]:
    """``(importer, imported) -> ["file:line", ...]`` between glue's top-level packages/modules."""
    edges: dict[tuple[str, str], list[str]] = {}
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).parts
        src = rel[0].removesuffix(".py")
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                names = ["glue." + ".".join([*rel[: -node.level], *(node.module or "").split(".")]).rstrip(".")]
            else:
                continue
            for n in names:
                parts = n.split(".")
                if parts[0] == "glue" and len(parts) > 1 and parts[1] != src:
                    edges.setdefault((src, parts[1]), []).append(f"{f.relative_to(root.parent)}:{node.lineno}")
    return edges


def wrong_way(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """Edges that point up a layer, or against the order inside one."""
    bad = []
    for (a, b), where in sorted(edges.items()):
        if a not in ORDER or b not in ORDER:
            bad.append(f"{a} -> {b}: package not placed in LAYERS (tests/test_layering.py)")
        elif ORDER[b] > ORDER[a]:
            kind = "up a layer" if RANK[b] > RANK[a] else "against the order inside its layer"
            bad.append(f"{a} ({LAYERS[RANK[a]][0]}) -> {b} ({LAYERS[RANK[b]][0]}), {kind}: {', '.join(where)}")
    return bad


def _module_names(root: Path) -> dict[str, Path]:
    """``glue.select.oracle`` -> its file (a package is its ``__init__.py``: ``glue.select``)."""
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def module_edges(root: Path = GLUE) -> dict[str, dict[str, list[int]]]:
    """``importer -> {imported: [line, ...]}`` between glue's modules (function-local imports included).

    ``from glue.select import evolutionary`` is an edge to the module ``glue.select.evolutionary``;
    ``from glue.eval import EvalSpec`` one to the package ``glue.eval`` (its ``__init__.py``)."""
    mods = _module_names(root)
    edges: dict[str, dict[str, list[int]]] = {}
    for name, f in mods.items():
        pkg = name if f.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    mod = ".".join(up + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            else:
                continue
            for t in targets:
                while t not in mods and "." in t:  # glue.eval.spec.EvalSpec -> glue.eval.spec
                    t = t.rpartition(".")[0]
                if t in mods and t != name:
                    lines = edges.setdefault(name, {}).setdefault(t, [])
                    if node.lineno not in lines:
                        lines.append(node.lineno)
    return edges


def module_cycles(edges: dict[str, dict[str, list[int]]]) -> list[str]:
    """Each strongly connected set of two or more modules, with the edges inside it (``a -> b (lines)``)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    counter = itertools.count()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in sorted(edges):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return [" <-> ".join(comp) + ": " + "; ".join(f"{a} -> {b} (line {', '.join(map(str, edges[a][b]))})"
                                                   for a in comp for b in sorted(edges.get(a, {})) if b in comp)
            for comp in sorted(found)]


def test_every_package_is_placed():
    pkgs = {p.name.removesuffix(".py") for p in GLUE.iterdir() if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert pkgs <= set(ORDER), f"place these packages in LAYERS: {sorted(pkgs - set(ORDER))}"


def test_imports_point_down():
    bad = wrong_way(package_edges())
    assert not bad, "imports running the wrong way:\n" + "\n".join(bad)


def test_checker_catches_a_lazy_wrong_way_import(tmp_path):
    """The checker itself: a function-local import of the zoo inside merge is reported."""
    for pkg, body in {"merge": "def f():\n    from glue.zoo import get_zoo\n", "zoo": "import glue.errors\n"}.items():
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text(body)
    bad = wrong_way(package_edges(tmp_path))
    assert len(bad) == 1 and bad[0].startswith("merge (math and assembly) -> zoo (data and evaluation), up a layer")


def test_no_module_cycles():
    cycles = module_cycles(module_edges())
    assert not cycles, "modules importing each other (move the shared piece to a module both import):\n" + \
        "\n".join(cycles)


def test_checker_catches_a_lazy_module_cycle(tmp_path):
    """The checker itself: a function-local import closing a cycle between two modules of one package is
    reported; ``from pkg import module`` counts as an import of that module."""
    pkg = tmp_path / "glue" / "select"
    pkg.mkdir(parents=True)
    (tmp_path / "glue" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from glue.select import b\n")
    (pkg / "b.py").write_text("def f():\n    from glue.select.a import x\n")
    (pkg / "c.py").write_text("from glue.select.a import y\n")
    assert module_cycles(module_edges(tmp_path / "glue")) == [
        "glue.select.a <-> glue.select.b: glue.select.a -> glue.select.b (line 1); "
        "glue.select.b -> glue.select.a (line 2)"]


if __name__ == "__main__":  # python tests/test_layering.py: the package import graph as a Markdown table
    edges = package_edges()
    print("| layer | package | imports (glue packages) |\n|---|---|---|")
    for layer, pkgs in LAYERS:
        for p in pkgs:
            deps = sorted({b for (a, b) in edges if a == p}, key=ORDER.get)
            print(f"| {layer} | {p} | {', '.join(deps) or '-'} |")
    bad = wrong_way(edges)
    print("\n" + ("\n".join(bad) if bad else f"{len(edges)} package edges, all pointing down"))
