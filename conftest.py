"""Root conftest: the docstring examples in edgelite/ run with the tests (see tests/doctestkit.py)."""

from tests.doctestkit import pytest_collect_file, pytest_terminal_summary  # noqa: F401  (pytest hooks)
