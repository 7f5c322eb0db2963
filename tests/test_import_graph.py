"""The package's import graph, read statically (AST; nothing is imported).

(a) No import cycle between modules of ``constrained_unlearn``. Every import executed at run
    time counts, at module level or inside a function (a lazy import that closes a cycle is
    still a cycle of the design); imports under ``if TYPE_CHECKING:`` do not (they never run).
    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``
    (its ``__init__``).
(b) No module reads another module's private names: ``from m import _x`` (``_x`` not a module
    of ``m``'s own package), a private module ``pkg._m`` imported from outside ``pkg``, and
    ``mod._x`` where ``mod`` is a name bound to a module of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "constrained_unlearn"


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` (``pkg/__init__.py`` → ``pkg``)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run (anywhere but under ``if TYPE_CHECKING:``)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of ``from <...> import``."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def _deepest(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def analyze(root: Path = ROOT, package: str = PACKAGE):
    """``(edges {module: {imported modules}}, private-name offenders [text])``."""
    modules = module_files(root, package)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    offenders: list[str] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        bound: dict[str, str] = {}  # local name → package module it refers to
        for node in runtime_imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _deepest(alias.name, modules)
                    if target is None:
                        continue
                    edges[module].add(target)
                    if alias.asname:
                        bound[alias.asname] = target
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
                continue
            base = _base(module, is_package, node)
            if _deepest(base, modules) is None:
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in modules:
                    edges[module].add(full)
                    bound[alias.asname or alias.name] = full
                    owner = base
                    if alias.name.startswith("_") and not module.startswith(owner + "."):
                        offenders.append(f"{module}: imports private module {full}")
                else:
                    edges[module].add(_deepest(base, modules))  # type: ignore[arg-type]
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{module}: from {base} import {alias.name}")
            private = [p for p in base.split(".") if p.startswith("_") and not p.startswith("__")]
            if private:
                owner = base[: base.index(private[0]) - 1]
                if not module.startswith(owner + ".") and module != owner:
                    offenders.append(f"{module}: imports from private module {base}")
        edges[module].discard(module)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if not node.attr.startswith("_") or node.attr.startswith("__"):
                continue
            chain = []
            value: ast.expr = node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if not isinstance(value, ast.Name) or value.id not in bound:
                continue
            dotted = ".".join([bound[value.id], *reversed(chain)])
            if dotted in modules and dotted != module:
                offenders.append(f"{module}: reads {dotted}.{node.attr} (line {node.lineno})")
    return edges, sorted(set(offenders))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return sorted(found)


def _example_cycle(component: list[str], edges: dict[str, set[str]]) -> str:
    """One concrete loop inside a component, ``a → b → a``."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(edges[path[-1]] & members)
        back = [n for n in nxt if n == start]
        if back and len(path) > 1:
            return " → ".join([*path, start])
        fresh = [n for n in nxt if n not in seen]
        if not fresh:
            return " ↔ ".join(component)
        path.append(fresh[0])
        seen.add(fresh[0])


# -- the checker itself, on a small hand-made package --------------------------------------
def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_cycles_and_private_reads(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "def f():\n    from pkg import a\n    return a._hidden\n",
            "pkg/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n"
                "from pkg.d import _secret\nimport pkg.d as dee\nvalue = dee._other\n"
            ),
            "pkg/d.py": "from . import _util\nfrom ._util import helper\n",
            "pkg/_util.py": "helper = 1\n",
            "pkg/sub/__init__.py": "from pkg._util import helper\n",  # inside pkg: allowed
            "pkg/sub/_inner.py": "z = 1\n",
            "pkg/e.py": "from pkg.sub._inner import z\n",
        },
    )
    edges, offenders = analyze(tmp_path, "pkg")
    assert edges["pkg.a"] == {"pkg.b"} and edges["pkg.b"] == {"pkg.a"}
    assert edges["pkg.c"] == {"pkg.d"}  # the TYPE_CHECKING import is not an edge
    assert edges["pkg.d"] == {"pkg._util"}
    assert cycles(edges) == [["pkg.a", "pkg.b"]]
    assert offenders == [
        "pkg.b: reads pkg.a._hidden (line 3)",
        "pkg.c: from pkg.d import _secret",
        "pkg.c: reads pkg.d._other (line 6)",
        "pkg.e: imports from private module pkg.sub._inner",
    ]


# -- the package -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph():
    return analyze()


def test_graph_sees_the_package(graph):
    edges, _ = graph
    assert len(edges) > 50
    assert "constrained_unlearn.tracking.plots" in edges["constrained_unlearn.tracking.compare"]


def test_no_import_cycle(graph):
    edges, _ = graph
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(_example_cycle(c, edges) for c in found)


def test_no_module_reads_another_modules_private_names(graph):
    _, offenders = graph
    assert not offenders, "private names read across modules:\n" + "\n".join(offenders)


def test_evaluation_never_imports_the_engine():
    # DESIGN.md: "Evaluation never imports the engine" (run time, parent packages included)
    import subprocess
    import sys

    evaluation = sorted(m for m in module_files() if m.startswith(f"{PACKAGE}.evaluation"))
    code = (
        "import importlib, sys\n"
        f"for m in {evaluation!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.startswith('{PACKAGE}.engine')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", f"evaluation imports the engine: {out.stdout.strip()}"


def test_the_eval_command_reads_local_data_without_the_engine_or_datasets(tmp_path):
    # `constrained-unlearn eval` is timed against open-unlearning (docs/benchmarks.md): what it
    # imports to load local TOFU files and check its output folder must stay light
    import json
    import subprocess
    import sys

    (tmp_path / "forget10.jsonl").write_text(json.dumps({"question": "q?", "answer": "a."}) + "\n")
    code = (
        "import sys\n"
        "import constrained_unlearn.cli.main, constrained_unlearn.evaluation.tofu\n"
        "from constrained_unlearn.recipes.data import load_benchmark\n"
        "from constrained_unlearn.recipes.output_dir import check_output_dir\n"
        f"check_output_dir({str(tmp_path / 'out')!r})\n"
        f"rows = load_benchmark('tofu', {str(tmp_path)!r})['forget10']\n"
        "assert rows == [{'question': 'q?', 'answer': 'a.'}], rows\n"
        "heavy = ('constrained_unlearn.engine', 'constrained_unlearn.solvers', 'cooper', 'datasets')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", f"the eval command imports: {out.stdout.strip()}"
