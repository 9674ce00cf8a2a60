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


#: The layers, lowest first: a package may import the packages listed for it (and ``gating``,
#: and the top-level base modules ``cytomnt.errors``/``cytomnt.ruo``), never one above it.
#: The command line, the demo and synthetic data (the other top-level modules) may import any.
LAYERS = {
    "cytomnt.inputs": set(),
    "cytomnt.sample": {"cytomnt.inputs"},
    "cytomnt.run": {"cytomnt.inputs", "cytomnt.sample"},
    "cytomnt.patients": {"cytomnt.inputs", "cytomnt.sample", "cytomnt.run"},
    "cytomnt.exports": {"cytomnt.inputs", "cytomnt.sample", "cytomnt.run", "cytomnt.patients"},
    "gating.io": set(),
    "gating.evaluator": {"gating.preprocess"},
    "gating.auto": {"gating.io", "gating.preprocess"},
    "gating.formats": {"gating.io", "gating.evaluator", "gating.auto", "gating.preprocess"},
}
BASE = {"cytomnt", "cytomnt.errors", "cytomnt.ruo", "gating", "gating.stable", "gating.parallel"}


def _layer(module: str) -> str | None:
    return next((p for p in LAYERS if module == p or module.startswith(p + ".")), None)


def test_every_package_imports_only_the_layers_below_it():
    g = _graph()
    bad = []
    for a, b in g.edges:
        la, lb = _layer(a), _layer(b)
        if la is None or la == lb or b in BASE:
            continue
        allowed = LAYERS[la] | ({"gating"} if la.startswith("cytomnt") else set())
        if not any(b == p or b.startswith(p + ".") for p in allowed) and not (
                la.startswith("cytomnt") and b.startswith("gating")):
            bad.append(f"{a} -> {b}")
    assert not bad, "imports against the layers: " + "; ".join(sorted(bad))


def test_layers_cover_every_package_and_each_says_what_it_may_import():
    """Every subpackage is a known layer and its docstring names what it is for and may import."""
    packages = {n for n, p in _modules().items() if p.name == "__init__.py" and "." in n}
    top = {n for n in packages if n.count(".") == 1}
    assert top == set(LAYERS), f"packages without a layer (or layers without a package): {top ^ set(LAYERS)}"
    for name in sorted(packages):
        doc = ast.get_docstring(ast.parse(_modules()[name].read_text())) or ""
        assert len(doc) > 80, f"{name}/__init__.py: say what the package is for"
        if name in LAYERS:
            assert "may import" in doc.lower(), f"{name}/__init__.py: say what it may import"


@pytest.mark.parametrize("pkg,limit", [("cytomnt", 12), ("gating", 10)])
def test_few_modules_at_the_top(pkg, limit):
    top = sorted(p.name for p in (ROOT / pkg).glob("*.py"))
    assert len(top) <= limit, f"{pkg}/ has {len(top)} top-level modules (at most {limit}): {top}"


def test_readme_layout_names_every_package():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    folders = sorted(str(p.parent.relative_to(ROOT)) + "/" for p in ROOT.glob("*/**/__init__.py")
                     if p.parent.relative_to(ROOT).parts[0] in PACKAGES)
    missing = [f for f in folders if f"`{f}`" not in layout]
    assert not missing, f"README's layout does not name {missing}"


#: Where the run's whole configuration may travel: where it is built (the command line, the
#: demo), defined, and where a run starts and unpacks it. Every other function takes its part.
CONFIG_HOMES = {"cytomnt.cli", "cytomnt.demo", "cytomnt.run.config", "cytomnt.run.batch"}


def test_the_run_configuration_is_unpacked_where_a_run_starts():
    offenders = []
    for name, path in _modules().items():
        if name in CONFIG_HOMES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
                for a in args:
                    note = ast.unparse(a.annotation) if a.annotation is not None else ""
                    if a.arg == "cfg" or "AnalysisConfig" in note:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({a.arg})")
    assert not offenders, "functions that take the whole run configuration: " + "; ".join(offenders)


def test_public_api_where_users_import_it():
    import cytomnt
    for name in cytomnt.__all__:
        assert getattr(cytomnt, name) is not None, name
    assert {"analyze", "analyze_sample", "make_config", "evaluate_risk", "Panel"} <= set(cytomnt.__all__)


def test_every_file_the_readme_names_exists():
    """Paths (`cytomnt/sample/carcall.py`) exist; in the Layout, each bulleted folder's files exist in it."""
    import re
    readme = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"`((?:cytomnt|gating|tests|benchmarks)/[\w/]+\.(?:py|yaml|j2))`", readme))
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    layout = readme[readme.index("## Layout"):]
    for block in re.split(r"\n(?=- )", layout):
        folder = re.match(r"- `((?:cytomnt|gating)/[\w/]*)/?`", block)
        if not folder:
            continue
        for name in re.findall(r"`(\w+\.(?:py|yaml|j2))`", block):
            if not any(p.name == name for p in (ROOT / folder.group(1)).rglob(name)):
                missing.append(f"{folder.group(1)}/{name}")
    assert not missing, f"README names files that do not exist: {missing}"


def test_ci_runs_the_readme_test_command_and_then_every_slow_test():
    """CI installs and tests as the README says, then runs what the README's command leaves out:
    together every test, none twice."""
    import re
    import shlex
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "pip install '.[test]'" in line)
    readme_args = shlex.split(command.split("-m pytest", 1)[1])
    ci = [shlex.split(line.split("-m pytest", 1)[1]) for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if "-m pytest" in line and not line.lstrip().startswith("#")]
    quiet = {"-q", "-p", "no:cacheprovider"}                  # CI's log is shorter, nothing else differs
    assert [a for a in ci[0] if a not in quiet] == readme_args, (ci[0], readme_args)
    assert [a[a.index("-m") + 1] for a in ci] == ["not slow", "slow"], ci
    assert re.search(r"pip\" install --quiet '\.\[test\]'", (ROOT / ".ci" / "run").read_text())
