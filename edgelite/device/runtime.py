"""The one module that knows the inference runtimes: LiteRT / tflite_runtime / tf.lite, the Edge TPU
delegate, and onnxruntime.

Adapters follow pycoral: load once, write the uint8 RGB image straight into the input tensor,
invoke, dequantize the output with the tensor's (scale, zero_point).

    >>> m = load_model("bundle/model_int8.tflite", num_threads=2)   # doctest: +SKIP
    >>> scores = m.classify(rgb_uint8_image)                        # doctest: +SKIP
    >>> top_k(scores, 3, labels=["cat", "dog", "fox"])              # doctest: +SKIP
    [Prediction(id=1, label='dog', score=0.91), ...]

Both adapters (`TFLiteModel`, `ONNXModel`) implement the `Model` protocol; code that runs a model
(the pipeline, `bench`, `convert`'s validator) relies on that protocol only, never on one adapter.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

import numpy as np

from edgelite.device.errors import ModelLoadError
from edgelite.errors import first_line
from edgelite.formats import model_format  # noqa: F401  (the suffix rule; imported from here by callers)

if TYPE_CHECKING:
    from edgelite.bundle import Bundle, ModelEntry

log = logging.getLogger("edgelite.device")

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


class Prediction(NamedTuple):
    """One class of a model's output: its index, its label (None when no labels are given) and its score.

    The record `top_k` returns and `run` reports; its field names are the keys of the JSON output's
    ``top_k`` entries (pycoral calls it ``Class(id, score)``).
    """

    id: int
    label: str | None
    score: float


@runtime_checkable
class Model(Protocol):
    """What every loaded model offers, whatever its runtime (`TFLiteModel`, `ONNXModel`).

    One frame: `set_input` (or write into `input_view()`), `invoke`, `scores`; `classify` does all three.
    """

    path: Path
    runtime: str  # e.g. "ai_edge_litert.interpreter", "onnxruntime 1.20.1"
    delegate: str | None  # "edgetpu" or None
    input_height: int
    input_width: int
    input_dtype: np.dtype
    num_classes: int

    @property
    def takes_raw_pixels(self) -> bool:
        """True when uint8 RGB pixels go into the input tensor as they are."""
        ...

    def input_view(self) -> np.ndarray | None:
        """A writable HxWx3 view of the input tensor when it takes raw pixels, else None."""
        ...

    def set_input(self, rgb: np.ndarray) -> None:
        """Write an HxWx3 uint8 RGB image into the input tensor."""
        ...

    def invoke(self) -> None:
        """Run the model on the current input."""
        ...

    def scores(self) -> np.ndarray:
        """The output of the last `invoke` as float32 (num_classes,), dequantized."""
        ...

    def output(self) -> np.ndarray:
        """The output of the last `invoke` as the model wrote it, (num_classes,), a copy: `scores()` is
        `dequantize(output())`; the camera loop dequantizes on its reporting thread."""
        ...

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """An `output()` as float32 scores."""
        ...

    def classify(self, rgb: np.ndarray) -> np.ndarray:
        """`set_input`, `invoke`, `scores` in one call."""
        ...


def _tflite_interpreter_module():
    """(module, name) of the best TFLite runtime installed: LiteRT, then tflite_runtime, then tf.lite."""
    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return importlib.import_module(name), name
        except ImportError:
            continue
    try:
        import tensorflow as tf  # workstation fallback only; the device install has no TensorFlow

        return tf.lite, "tensorflow.lite"
    except ImportError:
        raise ModelLoadError(
            "no TFLite runtime is installed; `pip install ai-edge-litert` (or `pip install edgelite`)"
        ) from None


def runtime_versions() -> dict[str, str]:
    """Versions of the runtimes present, for result files."""
    out: dict[str, str] = {"numpy": np.__version__}
    for mod in ("ai_edge_litert", "tflite_runtime", "onnxruntime", "cv2"):
        try:
            m = importlib.import_module(mod)
            out[mod] = getattr(m, "__version__", "?")
        except ImportError:
            pass
    return out


# ------------------------------------------------------------------------------------------ file checks
def check_model_file(path: str | os.PathLike, fmt: str | None = None, content: bytes | None = None) -> str:
    """Refuse a file that is obviously not a model before any interpreter parses it. Returns the format.

    `content`: the file's bytes when the caller already holds them (checked instead of the file)."""
    p = Path(path)
    if content is None and not p.exists():
        raise ModelLoadError(f"model file {p} does not exist")
    size = len(content) if content is not None else p.stat().st_size
    if size < 16:
        raise ModelLoadError(f"{p} is {size} bytes: not a model (truncated?)")
    fmt = fmt or model_format(p) or "tflite"
    if content is not None:
        head = content[:8]
    else:
        with open(p, "rb") as f:
            head = f.read(8)
    if fmt in ("tflite", "edgetpu"):
        if head[4:8] != b"TFL3":
            raise ModelLoadError(f"{p} is not a TFLite flatbuffer (no TFL3 identifier); the file is corrupt")
        root = int.from_bytes(head[:4], "little")
        if root >= size:
            raise ModelLoadError(f"{p} is truncated or corrupt (root table offset {root} past end {size})")
    return fmt


# ------------------------------------------------------------------------------------------ adapters
class TFLiteModel:
    """A TFLite model loaded into an interpreter (optionally with the Edge TPU delegate)."""

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None, edgetpu: bool = False,
                 content: bytes | None = None, edgetpu_device: str = ""):
        check_model_file(path, "tflite", content)
        mod, self.runtime = _tflite_interpreter_module()
        delegates = [load_edgetpu_delegate(mod, device=edgetpu_device)] if edgetpu else None
        kwargs = {"experimental_delegates": delegates}
        self._content = content  # the interpreter reads from this buffer for its whole life
        if content is not None:
            kwargs["model_content"] = content  # the bytes that were hashed, not the path again
        else:
            kwargs["model_path"] = str(path)
        if num_threads:
            kwargs["num_threads"] = int(num_threads)
        try:
            self.interpreter = mod.Interpreter(**kwargs)
            self.interpreter.allocate_tensors()
            inp = self.interpreter.get_input_details()
            out = self.interpreter.get_output_details()
        except Exception as e:  # a corrupt flatbuffer surfaces as ValueError, RuntimeError, UnicodeError, ...
            raise ModelLoadError(f"cannot load {path}: {first_line(e)}") from None
        self.path = Path(path)
        self.delegate = "edgetpu" if edgetpu else None
        if len(inp) != 1 or len(out) != 1:
            raise ModelLoadError(f"{path}: expected one input and one output tensor, got {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        shape = self._in["shape"]
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or min(shape) < 1:
            raise ModelLoadError(f"{path}: input shape {list(shape)} is not [1, H, W, 3]")
        out_shape = self._out["shape"]
        if len(out_shape) != 2 or out_shape[0] != 1 or out_shape[1] < 1:
            raise ModelLoadError(f"{path}: output shape {list(out_shape)} is not [1, classes]")
        self.input_height, self.input_width = _input_size(path, shape)
        self.input_dtype = np.dtype(self._in["dtype"])
        if self.input_dtype not in (np.uint8, np.int8, np.float32, np.float16):
            raise ModelLoadError(f"{path}: input type {self.input_dtype} is not uint8/int8/float32")
        self.in_scale, self.in_zero = self._in.get("quantization", (0.0, 0))
        self.out_scale, self.out_zero = self._out.get("quantization", (0.0, 0))
        self.num_classes = int(out_shape[1])
        self._raw_shape = (self.input_height, self.input_width, 3)
        self._raw_in = self.takes_raw_pixels  # looked up per frame

    @property
    def takes_raw_pixels(self) -> bool:
        """True when the input tensor holds uint8 pixels as they are (no cast, identity quantization)."""
        return self.input_dtype == np.uint8 and (
            not self.in_scale or (abs(self.in_scale - 1.0) < 1e-6 and self.in_zero == 0))

    def input_view(self) -> np.ndarray | None:
        """A writable HxWx3 view of the input tensor when it takes raw pixels, else None.

        Write the frame into it (e.g. `cv2.cvtColor(..., dst=view)`) and drop the reference before
        `invoke()`: the interpreter refuses to run while a view of its memory is alive.
        """
        if not self.takes_raw_pixels:
            return None
        return self.interpreter.tensor(self._in["index"])()[0]

    def set_input(self, rgb: np.ndarray) -> None:
        """Write an HxWx3 uint8 RGB image into the input tensor, quantizing only when the model asks to."""
        if self._raw_in and rgb.dtype == np.uint8 and rgb.shape == self._raw_shape:
            self.interpreter.set_tensor(self._in["index"], rgb[None])  # one copy, in C++ (no view to build)
            return
        view = self.interpreter.tensor(self._in["index"])()[0]
        if self.takes_raw_pixels:
            view[...] = rgb  # raw pixels straight in: no copy beyond this one
        elif self.input_dtype in (np.uint8, np.int8) and self.in_scale:
            info = np.iinfo(self.input_dtype)
            q = np.rint(rgb.astype(np.float32) / self.in_scale + self.in_zero)
            view[...] = np.clip(q, info.min, info.max).astype(self.input_dtype)
        else:
            view[...] = rgb.astype(self.input_dtype)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def scores(self) -> np.ndarray:
        """The output as float32, dequantized with the tensor's (scale, zero_point), widening first."""
        return self.dequantize(self.output())

    def output(self) -> np.ndarray:
        # right after invoke() every Python operation runs cold (~5-15 us each after 1 ms of XNNPACK
        # kernels): the model's thread only copies the output out, the reporting thread dequantizes it
        return self.interpreter.get_tensor(self._out["index"])[0]

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        if self._out["dtype"] in (np.uint8, np.int8) and self.out_scale:
            return (self.out_scale * (raw.astype(np.int32) - self.out_zero)).astype(np.float32)
        return raw.astype(np.float32, copy=False)

    def classify(self, rgb: np.ndarray) -> np.ndarray:
        self.set_input(rgb)
        self.invoke()
        return self.scores()


class ONNXModel:
    """An ONNX model run by onnxruntime on the CPU (batch 1, NHWC raw pixels)."""

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None, content: bytes | None = None):
        check_model_file(path, "onnx", content)
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelLoadError("onnxruntime is not installed; `pip install onnxruntime` to run .onnx models") from None
        so = ort.SessionOptions()
        if num_threads:
            so.intra_op_num_threads = int(num_threads)
            so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(content if content is not None else str(path), sess_options=so,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise ModelLoadError(f"cannot load {path}: {first_line(e)}") from None
        self.runtime = f"onnxruntime {ort.__version__}"
        self._content = content  # for a one-thread copy (device/workers.py)
        self.path = Path(path)
        self.delegate = None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        i = inputs[0]
        self._in_name = i.name
        shape = i.shape
        if len(shape) != 4 or shape[3] != 3 or not isinstance(shape[1], int) or not isinstance(shape[2], int):
            raise ModelLoadError(f"{path}: input shape {shape} is not [N, H, W, 3] with a fixed size")
        self.input_height, self.input_width = _input_size(path, shape)
        types = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(float16)": np.float16}
        if i.type not in types:
            raise ModelLoadError(f"{path}: input type {i.type} is not uint8 or float")
        self.input_dtype = np.dtype(types[i.type])
        out_shape = outputs[0].shape
        if not out_shape or not isinstance(out_shape[-1], int) or out_shape[-1] < 1:
            raise ModelLoadError(f"{path}: output shape {out_shape} has no fixed number of classes")
        self.num_classes = int(out_shape[-1])
        self._buf = np.zeros((1, self.input_height, self.input_width, 3), self.input_dtype)
        self._out = None

    @property
    def takes_raw_pixels(self) -> bool:
        return self.input_dtype == np.uint8

    def input_view(self) -> np.ndarray | None:
        """The HxWx3 input buffer handed to onnxruntime, when the model takes uint8 pixels; else None."""
        return self._buf[0] if self.takes_raw_pixels else None

    def set_input(self, rgb: np.ndarray) -> None:
        self._buf[0] = rgb

    def invoke(self) -> None:
        self._out = self.session.run(None, {self._in_name: self._buf})[0]

    def scores(self) -> np.ndarray:
        return self.dequantize(self.output())

    def output(self) -> np.ndarray:
        return self._out[0]  # a new array per run

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(raw, dtype=np.float32)

    def classify(self, rgb: np.ndarray) -> np.ndarray:
        self.set_input(rgb)
        self.invoke()
        return self.scores()


def _load_delegate_function(mod):
    """The runtime's load_delegate: LiteRT and tflite_runtime export it, tf.lite has it under experimental."""
    fn = getattr(mod, "load_delegate", None) or getattr(getattr(mod, "experimental", None), "load_delegate", None)
    if fn is None:
        raise ModelLoadError(f"{getattr(mod, '__name__', mod)} cannot load delegates; `pip install ai-edge-litert`")
    return fn


def load_edgetpu_delegate(mod=None, lib: str | None = None, device: str = ""):
    """Load libedgetpu (or `lib`) through the runtime's load_delegate; one-line error when it or the stick is missing.

    `device` picks one of several Edge TPUs as Coral's `model@usb:0` does: "" the first found, "usb:1", "pci:0",
    "usb", "pci", ":1" (`edgelite.device.options.check_edgetpu_device`); libedgetpu takes it as its "device" option.
    """
    import platform

    from edgelite.device.options import check_edgetpu_device

    check_edgetpu_device(device)
    if mod is None:
        mod, _ = _tflite_interpreter_module()
    lib = lib or EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")
    load_delegate = _load_delegate_function(mod)
    import ctypes

    try:
        # Probe the library first: when it is missing, LiteRT's load_delegate leaves a half-built Delegate
        # whose finalizer prints a traceback to stderr.
        so = ctypes.CDLL(lib)
    except OSError:
        raise ModelLoadError(
            f"cannot load the Edge TPU delegate: {lib} is not installed; install libedgetpu1-std from Coral's "
            "apt repository (https://coral.ai/software/) and plug in the Edge TPU"
        ) from None
    if not all(hasattr(so, sym) for sym in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate")):
        # the same half-built Delegate otherwise: an AttributeError, then its finalizer's traceback
        raise ModelLoadError(f"cannot load the Edge TPU delegate: {lib} is not a TFLite delegate library; "
                             "install libedgetpu1-std from Coral's apt repository")
    try:
        return load_delegate(lib, options={"device": device} if device else None)
    except (ValueError, OSError, RuntimeError, AttributeError) as e:
        # LiteRT's message is "Failed to load delegate from LIB\n<what libedgetpu reported>": keep the latter
        said = [s.strip() for s in str(e).splitlines() if s.strip() and not s.startswith("Failed to load delegate")]
        which = f" for device {device}" if device else ""
        raise ModelLoadError(
            f"cannot load the Edge TPU delegate {lib}{which} ({first_line('; '.join(said)) if said else 'not found'}): "
            "install libedgetpu1-std from Coral's apt repository and plug in the Edge TPU"
        ) from None


def load_model(path: str | os.PathLike, *, fmt: str | None = None, num_threads: int | None = None,
               edgetpu: bool = False, content: bytes | None = None, edgetpu_device: str = "") -> Model:
    """Load a .tflite / _edgetpu.tflite / .onnx file with its real runtime (from `content` when given);
    an Edge TPU model runs on `edgetpu_device` ("" = the first Edge TPU; see `load_edgetpu_delegate`)."""
    p = Path(path)
    fmt = fmt or model_format(p) or "tflite"  # an odd suffix still gets the TFLite header check
    if fmt == "onnx":
        return ONNXModel(p, num_threads=num_threads, content=content)
    return TFLiteModel(p, num_threads=num_threads, edgetpu=edgetpu or fmt == "edgetpu", content=content,
                       edgetpu_device=edgetpu_device)


def load_from_bundle(bundle: Bundle, name: str | None = None, *,
                     num_threads: int | None = None, edgetpu_device: str = "") -> tuple[Model, ModelEntry]:
    """(model, entry) for `name` (or the best format for this device) after verifying its sha256.

    With `name` None/"auto" the Edge TPU file is tried first when the bundle has one; when its delegate
    (or the stick) is missing the next-best CPU model is used instead. A named format never falls back.
    """
    if name in (None, "auto") and "edgetpu" in bundle.available():
        try:
            return _load_entry(bundle, bundle.select("edgetpu"), num_threads, edgetpu_device)
        except ModelLoadError as e:
            log.warning("Edge TPU model not used (%s); falling back to the CPU model", e)
    entry = bundle.select(name, edgetpu_ok=False)
    return _load_entry(bundle, entry, num_threads, edgetpu_device)


def _load_entry(bundle: Bundle, entry: ModelEntry, num_threads: int | None,
                edgetpu_device: str = "") -> tuple[Model, ModelEntry]:
    from edgelite.bundle import BundleError

    path, content = bundle.verified_bytes(entry)
    model = load_model(path, fmt=entry.format, num_threads=num_threads, content=content, edgetpu_device=edgetpu_device)
    if (model.input_height, model.input_width) != (bundle.input.height, bundle.input.width):
        raise BundleError(f"{path} takes {model.input_height}x{model.input_width} but the manifest says "
                          f"{bundle.input.height}x{bundle.input.width}")
    if model.num_classes != len(bundle.labels):
        raise BundleError(f"{path} outputs {model.num_classes} classes but the bundle has {len(bundle.labels)} labels")
    return model, entry


MAX_INPUT_SIDE = 4096  # no classifier takes more; a larger size means a corrupt file


def _input_size(path, shape) -> tuple[int, int]:
    h, w = int(shape[1]), int(shape[2])
    if not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
        raise ModelLoadError(f"{path}: input size {h}x{w} is not a plausible image size; the file is corrupt")
    return h, w


def top_k(scores: np.ndarray, k: int = 3, threshold: float = 0.0,
          labels: Sequence[str] | None = None) -> list[Prediction]:
    """Best k classes above threshold, best first (pycoral's get_classes), named from `labels` if given.

    >>> top_k(np.array([0.125, 0.625, 0.25], np.float32), 2, labels=["cat", "dog", "fox"])
    [Prediction(id=1, label='dog', score=0.625), Prediction(id=2, label='fox', score=0.25)]
    """
    n = scores.shape[-1]
    k = min(k, n)
    if n <= 256:  # the usual classifier: one sort is cheaper than a partition and a sort
        idx = np.argsort(-scores, kind="stable")[:k]
    else:
        idx = np.argpartition(-scores, k - 1)[:k]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
    # plain Python ints and floats, converted in one call each (this runs once per camera frame)
    return [Prediction(i, labels[i] if labels is not None else None, v)
            for i, v in zip(idx.tolist(), scores[idx].tolist(), strict=True) if v >= threshold]
