"""Imports point one way: math <- assembly <- data/evaluation <- harness.

Every import of every module under ``glue/`` is read from its source (function-local imports included),
so a lazy import cannot hide a wrong-way edge. A new package must be placed in ``LAYERS`` first.
"""

from __future__ import annotations

import ast
from pathlib import Path

GLUE = Path(__file__).resolve().parents[1] / "glue"

# Lowest first. A package may import packages of its own layer or below, never above; inside a layer
# the order given is the allowed direction (a package imports only those listed before it).
LAYERS: list[tuple[str, list[str]]] = [
    ("core", ["errors", "kernels", "paths", "safety", "lazy", "yamlfile", "registry", "arch"]),
    ("io", ["io"]),
    ("math and assembly", ["merge", "cluster", "mix"]),
    ("data and evaluation", ["zoo", "eval", "surrogate", "pretrained"]),
    ("harness", ["record", "select", "recipe", "bench", "cli", "__main__", "__init__"]),
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


if __name__ == "__main__":  # python tests/test_layering.py: the package import graph as a Markdown table
    edges = package_edges()
    print("| layer | package | imports (glue packages) |\n|---|---|---|")
    for layer, pkgs in LAYERS:
        for p in pkgs:
            deps = sorted({b for (a, b) in edges if a == p}, key=ORDER.get)
            print(f"| {layer} | {p} | {', '.join(deps) or '-'} |")
    bad = wrong_way(edges)
    print("\n" + ("\n".join(bad) if bad else f"{len(edges)} package edges, all pointing down"))
