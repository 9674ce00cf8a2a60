"""The house rules a reader relies on: no import circle, `gating` never imports `cytomnt`, no
module over 400 lines, and no reaching into another module's private names."""
import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cytomnt", "gating")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(name: str, path: Path, modules) -> set[str]:
    """Every project module ``name`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            targets = [t for t in subs if t in modules] or [base]
        for t in targets:
            while t and t not in modules:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name:
                found.add(t)
    return found


def _graph():
    modules = _modules()
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        for dep in _imports(name, path, modules):
            g.add_edge(name, dep)
    return g


def test_no_import_circle():
    g = _graph()
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c + [c[0]]) for c in cycles)


def test_gating_never_imports_cytomnt():
    g = _graph()
    bad = [(a, b) for a, b in g.edges if a.startswith("gating") and b.startswith("cytomnt")]
    assert not bad, bad


@pytest.mark.parametrize("name,path", sorted(_modules().items()))
def test_module_size(name, path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines (at most {MAX_LINES}): split it by responsibility"


#: Standard-library names that start with an underscore but are public, documented API.
PUBLIC_UNDERSCORE = {("os", "_exit"), ("sys", "_getframe")}


def test_no_private_names_of_other_modules():
    """``x._name`` where ``x`` is an imported module or an object of another module's class."""
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        imported = {a.asname or a.name.split(".")[0] for n in ast.walk(tree)
                    if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                    continue
                if isinstance(base, ast.Name) and (base.id, node.attr) in PUBLIC_UNDERSCORE:
                    continue
                if isinstance(base, ast.Name) and base.id not in imported and not base.id.startswith("_"):
                    # attribute of a local object: allowed only for namedtuple's public-by-convention API
                    if node.attr in ("_asdict", "_replace", "_fields"):
                        continue
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module and any(
                    part.startswith("_") and not part.startswith("__") for part in node.module.split(".")):
                if node.module.startswith("flowkit._resources"):      # the Gating-ML schema: no public API
                    continue
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module}")
    assert not offenders, offenders
