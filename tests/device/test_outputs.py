"""The outputs' written interface (edgelite.device.outputs.base.Output): every output in device/outputs/
implements it, so the loop calls write / flush / close on each without asking what it has."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import edgelite.device.outputs as outputs_pkg
from edgelite.device.options import RunOptions
from edgelite.device.outputs import open_outputs
from edgelite.device.outputs.base import Output


def _output_classes() -> dict[str, type]:
    """Every class defined in device/outputs/ that has a write method."""
    found = {}
    for info in pkgutil.iter_modules(outputs_pkg.__path__):
        module = importlib.import_module(f"{outputs_pkg.__name__}.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and cls is not Output and callable(getattr(cls, "write", None)):
                found[f"{module.__name__}.{name}"] = cls
    return found


def test_every_output_derives_from_the_output_protocol():
    classes = _output_classes()
    names = {name.rsplit(".", 1)[1] for name in classes}
    assert {"ConsoleOutput", "JsonLinesOutput", "DisplayOutput", "UncertainOutput", "PreviewServer",
            "MqttOutput"} <= names
    outside = [name for name, cls in classes.items() if Output not in cls.__mro__]  # subclassed: flush/close inherited
    assert not outside, f"outputs with write() that do not derive from Output: {outside}"
    for name, cls in classes.items():
        assert list(inspect.signature(cls.write).parameters)[:3] == ["self", "result", "frame"], name
        assert callable(cls.flush) and callable(cls.close), name


def test_open_outputs_gives_outputs_and_an_output_that_is_off_is_not_there(tmp_path):
    assert open_outputs(RunOptions(print_every=0)) == []
    made = open_outputs(RunOptions(json=str(tmp_path / "r.jsonl"), print_every=5))
    try:
        assert [type(o).__name__ for o in made] == ["JsonLinesOutput", "ConsoleOutput"]
        assert all(Output in type(o).__mro__ for o in made)
        assert made[1].stream is sys.stdout and made[1].every == 5
        for o in made:
            o.flush()  # the loop flushes every output when it waits; the console inherits a no-op
    finally:
        for o in made:
            o.close()
