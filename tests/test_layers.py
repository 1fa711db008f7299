"""The layers of docs/architecture.md import only downward (no circles, no upward imports),
and each constant has one definition."""

import ast
import re
import subprocess
import sys
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


# what a rank that only serves loads: the command line, its keeper's checks, the cluster and its services
SERVING = """
import sys
import rayscript.cli, rayscript.cluster
from rayscript.runtime.keeper import launcher_mismatch
launcher_mismatch()
print(sorted(m for m in sys.modules if m.split(".")[0] == "lark" or m == "importlib.metadata"
             or m.startswith(("rayscript.statements", "rayscript.language.parser"))))
"""


def test_a_rank_that_only_serves_loads_no_parser_no_statement_and_no_package_metadata():
    """Only the commander parses; every rank's start would otherwise pay for lark, the grammar and
    the statement modules (and for importlib.metadata, to learn which MPI pip installed)."""
    out = subprocess.run([sys.executable, "-c", SERVING], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
