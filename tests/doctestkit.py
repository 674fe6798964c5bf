"""The docstring examples (``>>>``) in edgelite/ run with the tests: the root conftest.py wires these hooks
and ``testpaths`` in pyproject.toml names edgelite/, so ``python -m pytest`` (``make test``) runs them.

A module is imported only when one of its examples runs. A module whose examples are all marked
``# doctest: +SKIP`` (they need TensorFlow, a camera, a device or files that are not here), or that has
none, is read as source text (ast) and never imported: collecting edgelite/ loads no TensorFlow and no
optional extra, and runs no ``__main__`` or Ansible plugin. A module whose import fails because an optional
dependency is not installed is skipped with that dependency's name; any other import error fails.
An example doctest would not find (in a nested function's docstring) fails, so every example runs or is
marked. The run ends with one line: how many examples ran and how many are skipped.
"""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule

PACKAGE = Path(__file__).resolve().parents[1] / "edgelite"
_TALLY = pytest.StashKey[list]()  # [examples collected to run, in how many modules, examples marked +SKIP]


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


def _tally(config: pytest.Config, run: int, skipped: int) -> None:
    tally = config.stash.setdefault(_TALLY, [0, 0, 0])
    tally[0] += run
    tally[1] += bool(run)
    tally[2] += skipped


class ExampleModule(DoctestModule):
    """A module's docstring examples; a missing optional dependency skips them (named) instead of erroring,
    and an example doctest does not find fails an item of its own."""

    def collect(self):
        items = list(super().collect())  # imports the module
        expected, skipped = docstring_examples(self.path.read_text(encoding="utf-8"), str(self.path))
        found = sum(1 for item in items for e in item.dtest.examples if not e.options.get(doctest.SKIP))
        if found < expected:
            items.append(UnfoundExamples.from_parent(self, name="examples doctest does not find",
                                                     missing=expected - found))
        _tally(self.config, found, skipped)
        return items

    def _getobj(self):
        try:
            return super()._getobj()
        except self.CollectError as error:
            missing = error.__cause__
            if isinstance(missing, ModuleNotFoundError) and (missing.name or "edgelite").split(".")[0] != "edgelite":
                pytest.skip(f"{self.path.name}: its examples need {missing.name}, which is not installed")
            raise


class SkippedExamples(pytest.File):
    """A module whose examples are all marked +SKIP: counted from its source, never imported."""

    def collect(self):
        _tally(self.config, 0, docstring_examples(self.path.read_text(encoding="utf-8"), str(self.path))[1])
        return []


class UnfoundExamples(pytest.Item):
    def __init__(self, *, missing: int, **kwargs):
        super().__init__(**kwargs)
        self.missing = missing

    def runtest(self) -> None:
        raise AssertionError(f"{self.missing} docstring example(s) in {self.path.name} never run: doctest finds only "
                             "the docstrings of the module and of the classes, functions and methods it defines "
                             "(not nested functions): move them there or mark them +SKIP")

    def repr_failure(self, excinfo, style=None) -> str:
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, self.name


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if (file_path.suffix != ".py" or file_path.name == "__main__.py" or not file_path.is_relative_to(PACKAGE)
            or parent.config.option.doctestmodules):  # with --doctest-modules pytest's own collector does it all
        return None
    try:
        run, skipped = docstring_examples(file_path.read_text(encoding="utf-8"), str(file_path))
    except (SyntaxError, ValueError):
        return ExampleModule.from_parent(parent, path=file_path)  # collecting it reports the error, located
    if run:
        return ExampleModule.from_parent(parent, path=file_path)
    return SkippedExamples.from_parent(parent, path=file_path) if skipped else None


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    run, modules, skipped = config.stash.get(_TALLY, [0, 0, 0])
    if run or skipped:
        where = f"{modules} module" + ("s" if modules != 1 else "")
        terminalreporter.write_line(f"docstring examples in edgelite/: {run} run (in {where}), "
                                    f"{skipped} marked +SKIP (they need TensorFlow, a camera, a device or files)")
