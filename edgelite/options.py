"""Options declared once: each command's frozen dataclass is filled from its argparse namespace by field name.

A command's options class (`TrainOptions`, `ConvertOptions`, `RunOptions`, `BenchOptions`,
`DeployOptions`) is the one list of its settings: the CLI's `dest` names are the field names, the
Python API takes the same names, and nothing is retyped field by field. Standard library only.

    >>> import argparse, dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Demo:
    ...     runs: int = 100
    ...     threads: str = "1"
    >>> from_namespace(Demo, argparse.Namespace(runs=5, threads="1,2", command="bench", func=None))
    Demo(runs=5, threads='1,2')
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def field_names(cls: type) -> set[str]:
    """The field names of an options dataclass."""
    return {f.name for f in dataclasses.fields(cls)}


def from_namespace(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """`cls` with every field the namespace has (by name), then `overrides`; fields it lacks keep their
    defaults. Namespace entries that are not fields (``command``, ``func``) are ignored."""
    names = field_names(cls)
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return cls(**values)
