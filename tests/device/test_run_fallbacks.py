"""The TFLite runtime fallbacks: tflite_runtime and tf.lite run the same model as LiteRT, and a delegate
that fails to load is a one-line ModelLoadError on each of them (no Edge TPU here: a real shared library
that is not a delegate takes the same path as a libedgetpu without its stick)."""

from __future__ import annotations

import ctypes.util
import importlib
import sys

import numpy as np
import pytest

from edgelite.bundle import Bundle
from edgelite.device import runtime
from edgelite.device.errors import ModelLoadError

NOT_A_DELEGATE = ctypes.util.find_library("m") or "libm.so.6"  # loads with dlopen, has no delegate entry points


def _block(monkeypatch, *names):
    """Make `import name` raise ImportError, as on a device where that runtime is not installed."""
    for name in names:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, mod)
        monkeypatch.setitem(sys.modules, name, None)


def _fallback(monkeypatch, which):
    if which == "tflite_runtime.interpreter":
        pytest.importorskip("tflite_runtime.interpreter", reason="tflite-runtime is not installed (Python <= 3.11)")
        _block(monkeypatch, "ai_edge_litert")
    else:
        _block(monkeypatch, "ai_edge_litert", "tflite_runtime")
    mod, name = runtime._tflite_interpreter_module()
    assert name == which
    return mod


@pytest.mark.parametrize("which", ["tflite_runtime.interpreter", "tensorflow.lite"])
def test_fallback_runtime_gives_litert_scores(tiny, heldout, monkeypatch, which):
    bundle = Bundle.load(tiny["bundle"])
    path = bundle.verified_path(bundle.select("int8"))
    img = heldout[0][0]
    reference = runtime.load_model(path, num_threads=1).classify(img)
    mod = _fallback(monkeypatch, which)
    if which == "tflite_runtime.interpreter" and int(np.__version__.split(".")[0]) >= 2 and \
            getattr(mod, "__version__", "2.14") < "2.15":
        # the last tflite-runtime wheel (2.14) is built against numpy 1.x: beside numpy 2 it cannot make an
        # interpreter, and the user gets one line that names the file, not a crash
        with pytest.raises(ModelLoadError, match=r"^cannot load .*model_int8.tflite: [^\n]*$"):
            runtime.load_model(path, num_threads=1)
        return
    model = runtime.load_model(path, num_threads=1)
    assert model.runtime == which
    np.testing.assert_allclose(model.classify(img), reference, atol=1e-6)


@pytest.mark.parametrize("which", ["ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"])
def test_a_delegate_that_fails_to_load_is_one_line_on_every_runtime(monkeypatch, which):
    if which == "ai_edge_litert.interpreter":
        mod = importlib.import_module(which)
    else:
        mod = _fallback(monkeypatch, which)
    if which == "tensorflow.lite":  # TensorFlow has no tf.lite.load_delegate: the experimental one is used
        assert not hasattr(mod, "load_delegate")
        assert runtime._load_delegate_function(mod) is mod.experimental.load_delegate
    with pytest.raises(ModelLoadError) as e:
        runtime.load_edgetpu_delegate(mod, lib=NOT_A_DELEGATE)
    msg = str(e.value)
    assert "\n" not in msg and "Edge TPU delegate" in msg and "libedgetpu1-std" in msg


def test_a_runtime_without_load_delegate_is_a_clear_error():
    class NoDelegates:
        __name__ = "oldruntime"

    with pytest.raises(ModelLoadError, match="cannot load delegates; `pip install ai-edge-litert`"):
        runtime.load_edgetpu_delegate(NoDelegates(), lib=NOT_A_DELEGATE)
