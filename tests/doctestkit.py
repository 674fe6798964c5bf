"""The docstring examples (``>>>``) in edgelite/ run with the tests: the root conftest.py wires these hooks
and ``testpaths`` in pyproject.toml names edgelite/, so ``python -m pytest`` (``make test``) runs them.

A module is imported only when one of its examples runs. A module whose examples are all marked
``# doctest: +SKIP`` (they need TensorFlow, a camera, a device or files that are not here), or that has
none, is read as source text (ast) and never imported: collecting edgelite/ loads no TensorFlow and no
optional extra, and runs no ``__main__`` or Ansible plugin. A module whose import fails because an optional
dependency is not installed is skipped with that dependency's name; any other import error fails.
The run ends with one line: how many examples there are to run and how many are skipped.
"""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule

PACKAGE = Path(__file__).resolve().parents[1] / "edgelite"
_COUNTS = pytest.StashKey[dict]()  # file -> (examples that run, examples skipped), of every file in edgelite/


def docstring_examples(source: str, filename: str = "<source>") -> tuple[int, int]:
    """(examples that run, examples marked +SKIP) in the docstrings of a module's source, without importing
    it. A malformed example or directive raises ValueError, as doctest would."""
    parser = doctest.DocTestParser()
    run = skipped = 0
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for example in parser.get_examples(ast.get_docstring(node, clean=False) or "", filename):
                if example.options.get(doctest.SKIP):
                    skipped += 1
                else:
                    run += 1
    return run, skipped


class ExampleModule(DoctestModule):
    """A module's docstring examples; a missing optional dependency skips them (named) instead of erroring."""

    def _getobj(self):
        try:
            return super()._getobj()
        except self.CollectError as error:
            missing = error.__cause__
            if isinstance(missing, ModuleNotFoundError) and (missing.name or "edgelite").split(".")[0] != "edgelite":
                pytest.skip(f"{self.path.name}: its examples need {missing.name}, which is not installed")
            raise


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix != ".py" or not file_path.is_relative_to(PACKAGE) or parent.config.option.doctestmodules:
        return None  # with --doctest-modules pytest's own collector imports every module
    try:
        run, skipped = docstring_examples(file_path.read_text(encoding="utf-8"), str(file_path))
    except (SyntaxError, ValueError):
        return ExampleModule.from_parent(parent, path=file_path)  # collecting it reports the error, located
    parent.config.stash.setdefault(_COUNTS, {})[file_path] = (run, skipped)
    if run and file_path.name != "__main__.py":
        return ExampleModule.from_parent(parent, path=file_path)
    return None


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    counts = config.stash.get(_COUNTS, {})
    run = sum(r for r, _ in counts.values())
    skipped = sum(s for _, s in counts.values())
    if run or skipped:
        modules = sum(1 for r, _ in counts.values() if r)
        terminalreporter.write_line(f"docstring examples in edgelite/: {run} to run (in {modules} modules), "
                                    f"{skipped} marked +SKIP (need TensorFlow, a camera, a device or files)")
