"""The docstring examples' collection (tests/doctestkit.py): what counts as an example that runs, and that
collecting them imports no TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.doctestkit import PACKAGE, docstring_examples

SOURCE = '''"""A module.

    >>> 1 + 1
    2
"""


class C:
    """A class.

    >>> C()                   # doctest: +SKIP
    """

    def method(self):
        """A method.

        >>> [x for x in
        ...  range(2)]
        [0, 1]
        """
        # >>> in a comment is no example
        text = """>>> nor in a string that is not a docstring"""
        return text
'''


def test_examples_are_counted_from_the_docstrings_alone():
    assert docstring_examples(SOURCE) == (2, 1)


def test_a_malformed_directive_is_an_error_as_in_doctest():
    with pytest.raises(ValueError, match="invalid option"):
        docstring_examples('"""\n>>> f()   # doctest: +SKIP  (why)\n"""\n')


def test_the_modules_whose_examples_run_import_no_tensorflow():
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if docstring_examples(path.read_text(encoding="utf-8"), str(path))[0] and path.name != "__main__.py":
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert len(modules) > 20
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in ('tensorflow', 'tf_keras', 'keras', 'torch', 'tf2onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]", f"a module whose docstring examples run imports {out.strip()}: mark them +SKIP"
