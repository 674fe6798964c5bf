"""The package's architectural rules, checked from the source alone (ast): nothing is imported or run.

- no import cycle among edgelite modules (module- and function-level imports count; imports under
  ``if TYPE_CHECKING:`` do not; a package ``__init__`` importing its own submodules is not a cycle);
- every exception class defined in edgelite/ derives from edgelite.errors.EdgeliteError;
- exactly one module in edgelite/ starts ssh/rsync/scp processes;
- no module in edgelite/ is over 450 lines;
- edgelite/errors.py imports only the standard library (the device agent's zipapp ships it).

Each failure names the offending module, line and class, so the message says what to fix.
"""

from __future__ import annotations

import ast
import builtins
import functools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "edgelite"
MAX_LINES = 450
SPAWNED = ("ssh", "rsync", "scp")


@functools.cache
def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module in edgelite/ (a package is its __init__.py)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@functools.cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def where(module: str, node: ast.AST | None = None) -> str:
    rel = modules()[module].relative_to(REPO)
    return f"{rel}:{node.lineno}" if node is not None else str(rel)


def _is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


def _type_checking_nodes(t: ast.Module) -> set[int]:
    """ids of every node inside an ``if TYPE_CHECKING:`` block (imports there never run)."""
    skip = set()
    for node in ast.walk(t):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement may load (``from a import b`` may load a or a.b)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative import: resolve against this module's package
        package = module.split(".") if _is_package(module) else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _edgelite_module(name: str) -> str | None:
    """The edgelite module a dotted name lives in (``edgelite.errors.UsageError`` -> ``edgelite.errors``)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def import_graph() -> dict[str, dict[str, int]]:
    """module -> {edgelite module it imports: line of the first such import}, function-level imports included."""
    graph: dict[str, dict[str, int]] = {}
    for module in modules():
        t = tree(module)
        skip = _type_checking_nodes(t)
        deps: dict[str, int] = {}
        for node in ast.walk(t):
            if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported_names(module, node):
                target = _edgelite_module(name)
                if target and target != module:
                    deps[target] = min(deps.get(target, node.lineno), node.lineno)
        graph[module] = deps
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
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

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in graph:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def cycle_path(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component, as 'file:line imports module' steps."""
    members = set(component)
    start = component[0]
    # breadth-first from start's successors back to start, inside the component
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier and start not in previous:
        nxt = []
        for v in frontier:
            for w in graph[v]:
                if w in members and w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    path = [start]
    while True:
        path.append(previous[path[-1]])
        if path[-1] == start:
            break
    path.reverse()  # start -> ... -> start
    return [f"{modules()[a].relative_to(REPO)}:{graph[a][b]} imports {b}" for a, b in zip(path, path[1:], strict=False)]


def test_no_import_cycle_among_edgelite_modules():
    graph = import_graph()
    # a package __init__ importing (re-exporting) its own submodules is not a cycle: a component counts
    # when more than one ordinary module takes part
    cycles = [c for c in strongly_connected(graph) if sum(not _is_package(m) for m in c) > 1]
    report = ["import cycle among " + ", ".join(c) + ":\n    " + "\n    ".join(cycle_path(graph, c))
              for c in cycles]
    assert not cycles, "\n".join(report)


def test_the_cycle_finder_sees_function_level_imports_and_skips_type_checking():
    """The checker itself: a function-level import closes a cycle; a TYPE_CHECKING import does not."""
    graph = {"a": {"b": 1}, "b": {"a": 7}, "c": {"a": 2}}
    assert strongly_connected(graph) == [["a", "b"]]
    t = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import edgelite.cli\n"
                  "def f():\n    import edgelite.errors\n")
    skip = _type_checking_nodes(t)
    seen = [a.name for n in ast.walk(t) if isinstance(n, ast.Import) and id(n) not in skip for a in n.names]
    assert seen == ["edgelite.errors"]


# ------------------------------------------------------------------------------------------ exceptions
ROOT = ("edgelite.errors", "EdgeliteError")
BUILTIN_EXCEPTIONS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


@functools.cache
def classes() -> dict[tuple[str, str], ast.ClassDef]:
    """(module, class name) -> its definition, for every class in edgelite/ (nested ones too)."""
    return {(m, n.name): n for m in modules() for n in ast.walk(tree(m)) if isinstance(n, ast.ClassDef)}


def _resolve_base(module: str, base: ast.expr, seen: frozenset = frozenset()) -> tuple[str, str] | str:
    """A base class expression -> (module, name) of an edgelite class, or the plain name of anything else."""
    name = ast.unparse(base)
    if isinstance(base, ast.Attribute):  # errors.DeployError, B.BenchUsageError, pickle.UnpicklingError
        short = base.attr
        owners = [key for key in classes() if key[1] == short]
        return owners[0] if len(owners) == 1 else name
    if (module, name) in classes():
        return module, name
    for node in ast.walk(tree(module)):  # `from X import name [as alias]`, following re-exports
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _edgelite_module(_imported_names(module, node)[0])
                    if source and (source, alias.name) not in seen:
                        return _resolve_base(source, ast.Name(alias.name), seen | {(source, alias.name)})
    return name


def _ancestors(key: tuple[str, str], seen: frozenset = frozenset()) -> list[tuple[str, str] | str]:
    """Every base, transitively: edgelite classes as (module, name), outside classes as their names."""
    out: list[tuple[str, str] | str] = []
    for base in classes()[key].bases:
        resolved = _resolve_base(key[0], base)
        out.append(resolved)
        if isinstance(resolved, tuple) and resolved in classes() and resolved not in seen:
            out.extend(_ancestors(resolved, seen | {key}))
    return out


def _is_exception_name(name: str) -> bool:
    short = name.rsplit(".", 1)[-1]
    return short in BUILTIN_EXCEPTIONS or short.endswith(("Error", "Exception"))


def exception_classes() -> list[tuple[str, str]]:
    """Every class in edgelite/ with a built-in or outside exception class among its ancestors."""
    return [key for key in classes() if any(isinstance(a, str) and _is_exception_name(a) for a in _ancestors(key))]


def test_every_exception_class_derives_from_edgelite_error():
    excs = exception_classes()
    assert ROOT in excs and len(excs) > 10, "the scanner found too few exception classes to be trusted"
    outside = [key for key in excs if key != ROOT and ROOT not in _ancestors(key)]
    lines = [f"{where(m, classes()[(m, n)])} class {n}({', '.join(ast.unparse(b) for b in classes()[(m, n)].bases)})"
             " does not derive from edgelite.errors.EdgeliteError" for m, n in outside]
    assert not outside, "\n".join(lines)


def test_the_exception_scanner_follows_imports_and_re_exports():
    """ModelLoadError is defined in device/errors.py and re-exported by device/runtime.py; the scanner
    sees a class deriving from it through either name, and recognises TorchFileError's two bases."""
    assert _resolve_base("edgelite.device.runtime", ast.Name("ModelLoadError")) == ("edgelite.device.errors",
                                                                                    "ModelLoadError")
    ancestors = _ancestors(("edgelite.train.torch_weights", "TorchFileError"))
    assert ROOT in ancestors and "pickle.UnpicklingError" in ancestors


def test_the_errors_module_imports_only_the_standard_library():
    bad = [f"{where('edgelite.errors', node)} imports {name}"
           for node in ast.walk(tree("edgelite.errors")) if isinstance(node, (ast.Import, ast.ImportFrom))
           for name in _imported_names("edgelite.errors", node)[:1]
           if name.split(".")[0] not in sys.stdlib_module_names and name != "__future__"]
    assert not bad, "edgelite/errors.py ships in the device agent without edgelite's dependencies:\n" + "\n".join(bad)


# ---------------------------------------------------------------------------------- ssh, module size
def ssh_spawning_modules() -> dict[str, list[str]]:
    """module -> ['file:line', ...] of every list/tuple literal that starts an ssh/rsync/scp argv."""
    found: dict[str, list[str]] = {}
    for module in modules():
        for node in ast.walk(tree(module)):
            if (isinstance(node, (ast.List, ast.Tuple)) and node.elts and isinstance(node.elts[0], ast.Constant)
                    and node.elts[0].value in SPAWNED):
                found.setdefault(module, []).append(f"{where(module, node)} {ast.unparse(node)[:60]}")
    return found


def test_exactly_one_module_starts_ssh_rsync_scp():
    found = ssh_spawning_modules()
    detail = "\n".join(f"{m}:\n    " + "\n    ".join(places) for m, places in sorted(found.items()))
    assert len(found) == 1, (f"{len(found)} modules build ssh/rsync/scp command lines; every remote call goes "
                             f"through one (edgelite/remote/):\n{detail}")


def test_no_module_over_450_lines():
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in modules().items()}
    too_long = sorted((n, where(m)) for m, n in sizes.items() if n > MAX_LINES)
    assert not too_long, f"modules over {MAX_LINES} lines (split them by concern):\n" + "\n".join(
        f"{path}: {n} lines" for n, path in reversed(too_long))


def test_the_names_the_agent_and_the_device_loop_share_are_spelled_alike():
    """The agent's zipapp holds only the standard library and edgelite.remote.layout, and edgelite/device/ imports
    no deploy code: the environment variables a release's files set for `edgelite run` are written twice."""
    from edgelite.device import pick, token
    from edgelite.remote import layout

    assert layout.PICK_CACHE_ENV == pick.CACHE_ENV
    assert layout.MQTT_PASSWORD_ENV == token.MQTT_PASSWORD_ENV
