"""No import cycles, and every module imports on its own (issue #15 item 6).

The import graph is read from the source with :mod:`ast`: an edge ``a -> b`` for every ``import``/``from`` of a module
``b`` of ``unmix`` (``unmix.gui``) in ``a``, at module level and (second graph) inside functions too, outside
``if TYPE_CHECKING:`` blocks. Cycles are its strongly connected components (Tarjan). Each module is then imported in a
process of its own that has no module of ``unmix`` loaded yet (forked from one that pre-imported the heavy third-party
libraries, so the test takes seconds instead of minutes).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"unmix": ROOT / "core", "unmix.gui": ROOT / "app"}

# Known cycles that are other work in progress, allowed for now so that the test fails on any NEW cycle. A cycle is
# allowed when all its modules start with the prefixes of one entry. Remove an entry when its cycle is gone.
# (separation <-> baselines went with the method registry, api <-> export when the module's call stopped importing the
# API function, cli <-> its command modules and the self-test when commands were added explicitly and the CLI started
# handing itself to the self-test.)
KNOWN_CYCLES: list[tuple[str, ...]] = []


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            out[".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))] = path
    return out


def _type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"


def _statements(body: list[ast.stmt], functions: bool):
    """The statements that run when the module (or, with ``functions``, any of its functions) runs."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if functions:
                yield from _statements(node.body, functions)
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from _statements(node.body, functions)
            yield from _statements(node.orelse, functions)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _statements(block, functions)
        elif isinstance(node, ast.With | ast.ClassDef | ast.For | ast.While):
            yield from _statements(node.body, functions)
        else:
            yield node


def _targets(node: ast.stmt, name: str, is_package: bool, modules: dict) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        parts = name.split(".") if is_package else name.split(".")[:-1]
        base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
    found = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found |= {sub} if sub in modules else {base} if base in modules else set()
    return found


def import_graph(functions: bool) -> dict[str, set[str]]:
    """Module -> the modules of unmix it imports (at module level; with ``functions`` also inside functions)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in _statements(ast.parse(path.read_text(), str(path)).body, functions):
            deps |= _targets(node, name, path.name == "__init__.py", modules)
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return found


def _known(component: list[str]) -> bool:
    return any(all(m.startswith(known) for m in component) for known in KNOWN_CYCLES)


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    return "\n".join(f"  {m} -> {', '.join(sorted(graph[m] & set(component)))}" for m in component)


@pytest.mark.parametrize("functions", [False, True], ids=["module-level", "with-function-level"])
def test_no_new_import_cycles(functions):
    graph = import_graph(functions)
    new = [c for c in cycles(graph) if not _known(c)]
    assert not new, "import cycles:\n" + "\n\n".join(_describe(c, graph) for c in new)


def test_the_cycle_finder_finds_a_cycle_and_its_members():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"} - {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert not _known(["unmix.features.store", "unmix.features.distributed"])
    assert not _known(["unmix.separation.scatcov", "unmix.baselines.template"])
    assert not _known(["unmix.cli", "unmix.cli.data"])  # no cycle is allowed any more


def test_the_graph_sees_the_imports_that_made_the_old_cycles():
    graph = import_graph(functions=True)
    assert "unmix.features.distributed" in graph["unmix.features.store"]
    assert "unmix.gui.registry" in graph["unmix.gui.views.forms"]
    assert "unmix.gui.panels.pipeline" in graph["unmix.gui.views.jobs"]


_IMPORT_EACH = textwrap.dedent("""
    import importlib, os, sys, traceback
    for heavy in ("numpy", "scipy.signal", "torch", "obspy", "h5py", "matplotlib.pyplot", "kymatio", "dask",
                  "click", "tqdm", "PySide6.QtWidgets", "pyqtgraph"):
        try:
            importlib.import_module(heavy)
        except ImportError:
            pass
    assert not [m for m in sys.modules if m == "unmix" or m.startswith("unmix.")]
    failed = 0
    for name in sys.argv[1:]:
        pid = os.fork()
        if pid == 0:
            try:
                importlib.import_module(name)
            except BaseException:
                print(f"--- {name}", file=sys.stderr)
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        failed += os.waitpid(pid, 0)[1] != 0
    sys.exit(1 if failed else 0)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="imports each module in a forked process")
def test_every_module_imports_in_a_fresh_process():
    names = sorted(m for m in _modules() if not m.endswith(".__main__"))  # ``python -m`` scripts run when imported
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH, *names], capture_output=True, text=True, timeout=600,
                          env=env, cwd=ROOT / "tests")
    assert proc.returncode == 0, proc.stderr[-6000:]
