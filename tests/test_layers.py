"""The layers of docs/architecture.md import only downward (no circles, no upward imports),
and each constant has one definition."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "rayscript"

# lowest first; a part may import parts of lower layers only (and itself)
LAYERS = [
    {"errors", "results", "progress", "logs"},
    {"pictures"},  # draws what statements computed (matplotlib, when installed)
    {"store"},
    {"items"},
    {"protocol", "language"},
    {"runtime"},
    {"genomics"},  # services typed against the node (runtime)
    {"interpreter"},
    {"statements"},
    {"cluster"},
    {"repl"},  # drives a Cluster
    {"cli"},
    {"__main__", "__init__"},
]
LEVEL = {part: n for n, parts in enumerate(LAYERS) for part in parts}


def _part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    package = path.relative_to(SRC).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = (*base, *(node.module.split(".") if node.module else ()))
            names = [target] if node.module else [(*base, a.name) for a in node.names]
            for t in names:
                if t:
                    yield node.lineno, t[0]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rayscript."):
            yield node.lineno, node.module.split(".")[1]


def test_every_part_has_a_layer():
    parts = {_part(p) for p in SRC.rglob("*.py")}
    assert parts <= set(LEVEL), parts - set(LEVEL)


def test_imports_go_only_downward():
    wrong = []
    for path in SRC.rglob("*.py"):
        here = _part(path)
        for line, target in _imports(path):
            if target != here and target in LEVEL and LEVEL[target] >= LEVEL[here]:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert wrong == []


def test_each_limit_is_defined_once():
    for name in ("MAX_K", "COUNT_MAX", "EDGES_MAX", "NAMESPACES"):
        defined = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                   if re.search(rf"^{name}\s*=", p.read_text(), re.M)]
        assert len(defined) <= 1, (name, defined)
    grammar = (SRC / "grammar" / "ray.lark").read_text()
    assert '"kmers" | "paths"' not in grammar  # namespaces come from the item registry
