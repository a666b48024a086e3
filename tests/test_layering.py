"""Import layering of the `kc2f` package, read from the source (nothing is imported).

Every module under `kc2f/` is parsed with `ast`; every import of a `kc2f`
module is collected: module-level and function-local ones, `import kc2f.x`,
`from kc2f import x`, `from kc2f.x import y`, relative imports and
`importlib.import_module("kc2f.x")` with a literal name. Then:

* every module must be placed in `LAYERS` (longest package prefix wins);
* no import cycle between modules, lazy (function-local) imports included;
* no lower layer imports a higher one (same layer is fine when acyclic);
* the package root `kc2f/__init__.py` defines constants (`__version__`) that
  any module may import, so it sits below every layer; it imports other `kc2f`
  modules only lazily, inside functions (a top-level API may reach up that
  way), so that `import kc2f.layers` stays light; imports of the root are
  therefore not counted in cycles.

Layers, lowest first: 0 layers, options; 1 models; 2 weights; 3 families; 4 data;
5 training; 6 experiments, export, inference, benchmark; 7 commands, cli.
The model families sit above both models and weights because a family needs
both: the Keras model it builds and the weight transfer that goes with it.

Each family is one folder, `kc2f/families/<name>/`: every module named after a
family lives in that family's folder, and no module outside it imports it (the
rest of kc2f reaches a family through `kc2f.families`' registry; the package's
`__init__` registers them).
"""

import ast
import dataclasses
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "kc2f"
ROOT_LEVEL = -1

# Package or module path -> layer; a module takes the layer of its longest listed prefix.
LAYERS = {
    "kc2f.layers": 0,
    "kc2f.options": 0,
    "kc2f.models": 1,
    "kc2f.weights": 2,
    "kc2f.families": 3,
    "kc2f.data": 4,
    "kc2f.training": 5,
    "kc2f.experiments": 6,
    "kc2f.export": 6,
    "kc2f.inference": 6,
    "kc2f.classifier": 6,
    "kc2f.benchmark": 6,
    "kc2f.commands": 7,
    "kc2f.cli": 7,
}


@dataclasses.dataclass(frozen=True)
class Edge:
    """One import statement: `importer` imports `imported` at `path:line`."""

    importer: str
    imported: str
    path: str
    line: int
    lazy: bool  # inside a function body: runs only when the function is called

    def __str__(self):
        how = "lazy" if self.lazy else "top-level"
        return f"{self.importer} -> {self.imported}   ({self.path}:{self.line}, {how})"


# --- the analyser -------------------------------------------------------------------------------


def find_modules(repo, package=PACKAGE):
    """`{dotted name: path relative to repo}` of every `.py` file under `repo/package`."""
    modules = {}
    for path in sorted((repo / package).rglob("*.py")):
        parts = list(path.relative_to(repo).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path.relative_to(repo).as_posix()
    return modules


def _is_package(name, modules):
    return modules[name].endswith("__init__.py")


def _resolve(name, modules):
    """The module a dotted import name loads: itself, or its longest existing prefix."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _in_package(name, package=PACKAGE):
    return name == package or name.startswith(package + ".")


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, importer, modules, package):
        self.importer, self.modules, self.package = importer, modules, package
        self.found = []  # (imported, line, lazy)
        self._function_depth = 0

    def _add(self, name, line):
        target = _resolve(name, self.modules)
        if target is not None and target != self.importer:
            self.found.append((target, line, self._function_depth > 0))

    def _function(self, node):
        self._function_depth += 1
        self.generic_visit(node)
        self._function_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        for alias in node.names:
            if _in_package(alias.name, self.package):
                self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node):
        if node.level:
            base = self.importer if _is_package(self.importer, self.modules) else self.importer.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        if not _in_package(base, self.package):
            return
        for alias in node.names:
            # `from kc2f.data import pipeline` loads the submodule; `from kc2f.data import
            # DATASETS` (or `*`) loads the package's `__init__`.
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in self.modules else base, node.lineno)

    def visit_Call(self, node):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if (
            name in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _in_package(node.args[0].value, self.package)
        ):
            self._add(node.args[0].value, node.lineno)
        self.generic_visit(node)


def collect_edges(repo, package=PACKAGE):
    """`(modules, edges)`: every module of `package` and every import between them."""
    modules = find_modules(repo, package)
    edges = []
    for name, path in modules.items():
        tree = ast.parse((repo / path).read_text(encoding="utf-8"), filename=path)
        collector = _ImportCollector(name, modules, package)
        collector.visit(tree)
        edges.extend(Edge(name, target, path, line, lazy) for target, line, lazy in collector.found)
    return modules, edges


def layer_of(module, layers=LAYERS, package=PACKAGE, root_level=ROOT_LEVEL):
    """The layer of `module` (longest matching prefix in `layers`), or `None` if unplaced."""
    if module == package:
        return root_level
    best = None
    for prefix in layers:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else layers[best]


def import_cycles(edges):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    graph = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def upward_imports(edges, layers=LAYERS, package=PACKAGE):
    """Edges whose importer sits on a lower layer than the module it imports."""
    bad = []
    for edge in edges:
        if edge.importer == package and edge.lazy:
            continue  # the root's lazy imports are its top-level API (checked separately)
        low, high = layer_of(edge.importer, layers, package), layer_of(edge.imported, layers, package)
        if low is not None and high is not None and low < high:
            bad.append(edge)
    return bad


# --- the tests on kc2f ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree():
    return collect_edges(REPO)


def test_every_module_is_in_the_layer_map(tree):
    modules, edges = tree
    unplaced = [m for m in modules if layer_of(m) is None]
    if not unplaced:
        return
    lines = [
        (
            f"{len(unplaced)} kc2f module(s) are not in the layer map. Place each one in LAYERS "
            "in tests/test_layering.py (or move it into a package that is):"
        )
    ]
    for module in unplaced:
        imports = sorted({(layer_of(e.imported), e.imported) for e in edges if e.importer == module},
                         key=lambda item: (item[0] is None, item))
        users = sorted({(layer_of(e.importer), e.importer) for e in edges if e.imported == module},
                       key=lambda item: (item[0] is None, item))
        floor = max((lvl for lvl, _ in imports if lvl is not None), default=0)
        ceiling = min((lvl for lvl, _ in users if lvl is not None), default=max(LAYERS.values()))
        if floor == ceiling:
            fits = f"only layer {floor} fits its placed imports and importers"
        elif floor < ceiling:
            fits = f"layers {floor}..{ceiling} fit its placed imports and importers"
        else:
            fits = f"no layer fits: it imports layer {floor} and is imported by layer {ceiling}"
        lines.append(f"  {module}  ({modules[module]}): {fits}")
        for level, name in imports:
            lines.append(f"      imports     {name} ({'unplaced' if level is None else f'layer {level}'})")
        for level, name in users:
            lines.append(f"      imported by {name} ({'unplaced' if level is None else f'layer {level}'})")
    pytest.fail("\n".join(lines), pytrace=False)


def test_no_import_cycles(tree):
    _, edges = tree
    # Imports of the package root are left out: the root defines its constants
    # (`__version__`) before anything else runs, so a module importing it can never meet
    # it half-initialised, even while the root's API functions import upwards.
    edges = [edge for edge in edges if edge.imported != PACKAGE]
    cycles = import_cycles(edges)
    if not cycles:
        return
    lines = [f"{len(cycles)} import cycle(s) between kc2f modules (lazy imports count too):"]
    for members in cycles:
        lines.append(f"  cycle among: {', '.join(members)}")
        inside = set(members)
        for edge in edges:
            if edge.importer in inside and edge.imported in inside:
                lines.append(f"      {edge}")
    pytest.fail("\n".join(lines), pytrace=False)


def test_no_lower_layer_imports_a_higher_one(tree):
    _, edges = tree
    bad = upward_imports(edges)
    if not bad:
        return
    lines = [f"{len(bad)} import(s) from a lower layer into a higher one (importer -> imported):"]
    for edge in bad:
        lines.append(f"  [{layer_of(edge.importer)} -> {layer_of(edge.imported)}] {edge}")
    pytest.fail("\n".join(lines), pytrace=False)


def test_package_root_imports_only_lazily(tree):
    _, edges = tree
    eager = [edge for edge in edges if edge.importer == PACKAGE and not edge.lazy]
    if eager:
        pytest.fail(
            "kc2f/__init__.py imports kc2f modules at import time; import them inside "
            "functions (e.g. a module `__getattr__`):\n" + "\n".join(f"  {edge}" for edge in eager),
            pytrace=False,
        )


def _family_names(repo=REPO, package=PACKAGE):
    return sorted(p.name for p in (repo / package / "families").iterdir()
                  if p.is_dir() and (p / "__init__.py").is_file())


def _named_after(module, family):
    words = module.rsplit(".", 1)[-1].split("_")
    return family in words or (family == "ast" and "audio_spectrogram_transformer" in module)


def test_family_modules_live_in_their_family_folder(tree):
    modules, _ = tree
    families = _family_names()
    assert {"ast", "htsat", "ssast"} <= set(families)
    stray = [(m, f) for m in modules for f in families
             if _named_after(m, f) and not m.startswith(f"{PACKAGE}.families.{f}")]
    assert not stray, "modules named after a family outside its folder kc2f/families/<family>/: " + ", ".join(
        f"{m} ({f})" for m, f in stray)


def test_only_its_own_folder_and_the_registry_import_a_family(tree):
    _, edges = tree
    families = _family_names()
    registry = f"{PACKAGE}.families"
    bad = []
    for edge in edges:
        for family in families:
            home = f"{registry}.{family}"
            if (edge.imported == home or edge.imported.startswith(home + ".")) and not (
                    edge.importer == registry or edge.importer.startswith(f"{registry}.")):
                bad.append(f"  {edge}")
    assert not bad, ("modules outside kc2f/families/ import a family directly; reach it through "
                     "kc2f.families (get_family, family_of):\n" + "\n".join(bad))


def test_no_family_name_as_a_literal_outside_its_folder(tree):
    modules, _ = tree
    families = set(_family_names())
    found = []
    for module, path in modules.items():
        if any(module.startswith(f"{PACKAGE}.families.{f}") for f in families):
            continue
        for node in ast.walk(ast.parse((REPO / path).read_text())):
            if isinstance(node, ast.Constant) and node.value in families:
                found.append(f"  {path}:{node.lineno}: {node.value!r}")
    assert not found, ("family names as literals outside their folder (use default_family(), "
                       "pretraining_family() or a family attribute):\n" + "\n".join(found))


# --- the analyser on small synthetic packages ---------------------------------------------------


def _write(repo, files):
    for relative, text in files.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _pairs(edges):
    return sorted((e.importer, e.imported, e.lazy) for e in edges)


def test_analyser_resolves_every_import_form(tmp_path):
    _write(tmp_path, {
        "kc2f/__init__.py": "def __getattr__(name):\n    from kc2f import cli\n    return cli\n",
        "kc2f/cli.py": "import os\nimport kc2f.data.pipeline as p\nfrom kc2f import config\n",
        "kc2f/config.py": "import importlib\nimportlib.import_module('kc2f.data')\n",
        "kc2f/data/__init__.py": "from .pipeline import make\nfrom . import registry\n",
        "kc2f/data/registry.py": "from kc2f.data import make\nfrom kc2f import __version__\n",
        "kc2f/data/pipeline.py": "class A:\n    from ..layers import fbank\n"
                                 "def f():\n    from .registry import SPEC\n",
        "kc2f/layers/__init__.py": "",
        "kc2f/layers/fbank.py": "from kc2f.layers import *\nimport kc2fother\nimport kc2f.layers.nothing\n",
    })
    modules, edges = collect_edges(tmp_path)
    assert modules["kc2f.data"] == "kc2f/data/__init__.py"
    assert _pairs(edges) == sorted([
        ("kc2f", "kc2f.cli", True),
        ("kc2f.cli", "kc2f.data.pipeline", False),
        ("kc2f.cli", "kc2f.config", False),
        ("kc2f.config", "kc2f.data", False),
        ("kc2f.data", "kc2f.data.pipeline", False),
        ("kc2f.data", "kc2f.data.registry", False),
        ("kc2f.data.registry", "kc2f.data", False),  # a name from the package's __init__
        ("kc2f.data.registry", "kc2f", False),  # __version__: an attribute of the root
        ("kc2f.data.pipeline", "kc2f.layers.fbank", False),  # class bodies run at import time
        ("kc2f.data.pipeline", "kc2f.data.registry", True),
        ("kc2f.layers.fbank", "kc2f.layers", False),  # `*`: the package's __init__
        ("kc2f.layers.fbank", "kc2f.layers", False),  # a missing submodule resolves upwards
    ])
    by_pair = {(e.importer, e.imported): e for e in edges}
    assert by_pair[("kc2f.data.pipeline", "kc2f.data.registry")].line == 4
    assert by_pair[("kc2f.data.pipeline", "kc2f.data.registry")].path == "kc2f/data/pipeline.py"


def test_analyser_finds_cycles_and_upward_imports(tmp_path):
    _write(tmp_path, {
        "kc2f/__init__.py": "",
        "kc2f/layers/__init__.py": "",
        "kc2f/layers/a.py": "from kc2f.layers import b\n",
        "kc2f/layers/b.py": "def f():\n    from kc2f.layers import a\n",
        "kc2f/layers/c.py": "import kc2f.training.x\n",
        "kc2f/training/__init__.py": "",
        "kc2f/training/x.py": "from kc2f.layers import c\nfrom kc2f.layersextra import y\n",
        "kc2f/layersextra/y.py": "",
    })
    _, edges = collect_edges(tmp_path)
    assert import_cycles(edges) == [
        ["kc2f.layers.a", "kc2f.layers.b"],
        ["kc2f.layers.c", "kc2f.training.x"],
    ]
    assert [(e.importer, e.imported) for e in upward_imports(edges)] == [("kc2f.layers.c", "kc2f.training.x")]
    # A prefix matches whole components only: `kc2f.layersextra` is not in `kc2f.layers`.
    assert layer_of("kc2f.layersextra.y") is None
    assert layer_of("kc2f.layers") == 0 and layer_of("kc2f.layers.c") == 0
    assert layer_of("kc2f") == ROOT_LEVEL and layer_of("kc2f.cli") == 7
