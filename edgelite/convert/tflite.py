"""Keras -> .tflite with the TFLite converter: float32, float16, dynamic range and full integer.

Float exports take uint8 pixels (a CAST is the graph's first op), full-integer exports take
uint8 (default), int8 or float32 via the converter's inference input/output type. Either way the
device writes raw RGB pixels into the input tensor; preprocessing is inside the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from edgelite.convert.errors import ConvertError
from edgelite.errors import first_line
from edgelite.train.tfenv import captured_stderr, import_tensorflow

OUTPUT_NAME = "scores"


def serving_function(model, input_dtype: str = "uint8"):
    """(tf.Module, concrete function) computing {"scores": model(image)} for one image of raw pixels.

    The module tracks only the model's variables: handing the Keras model itself to the converter
    makes it save every Keras-internal tf.function first (~30 s for EfficientNet-Lite0 here; ~3 s this way).
    """
    tf = import_tensorflow()

    h, w = (int(d) for d in model.inputs[0].shape[1:3])
    module = tf.Module()
    module.variables_ = list(model.variables)

    def serve(image):
        return {OUTPUT_NAME: model(tf.cast(image, tf.float32), training=False)}

    spec = tf.TensorSpec([1, h, w, 3], getattr(tf, input_dtype), name="image")
    module.serve = tf.function(serve, input_signature=[spec])
    return module, module.serve.get_concrete_function()


def calibration_dataset(images: np.ndarray):
    """Representative dataset: raw pixels exactly as the device feeds them, one image per step.

    The first image gets one black and one white pixel, so the calibrated input range is exactly
    [0, 255]: the uint8 input then has scale 1 and zero point 0 and camera pixels go in untouched.
    """
    pinned = images[0].copy()
    pinned.reshape(-1, 3)[0] = 0
    pinned.reshape(-1, 3)[1] = 255

    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(len(images)):
            img = pinned if i == 0 else images[i]
            yield [img[None].astype(np.float32)]

    return gen


def to_tflite(model, quantization: str, *, calibration: np.ndarray | None = None, io_type: str = "uint8",
              per_tensor: bool = False) -> bytes:
    """Convert a Keras model (float, pruned or QAT) to a .tflite flatbuffer.

    quantization: "none" (fp32), "float16", "dynamic" or "full_int8" (needs `calibration`).
    """
    tf = import_tensorflow()

    full_int8 = quantization == "full_int8"
    module, fn = serving_function(model, "float32" if full_int8 else "uint8")
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    if quantization == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif full_int8:
        if calibration is None or not len(calibration):
            raise ConvertError("full-integer quantization needs calibration images (--calibration N > 0)")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = calibration_dataset(calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[io_type]
        conv.inference_input_type = io
        conv.inference_output_type = io
        if per_tensor:
            conv._experimental_disable_per_channel = True  # the converter's only switch for it
    elif quantization != "none":
        raise ValueError(f"unknown quantization {quantization!r}")
    with captured_stderr() as err:
        try:
            return bytes(conv.convert())
        except Exception as e:  # the converter raises ConverterError, ValueError, RuntimeError...
            raise ConvertError(f"TFLite converter failed: {_first_error_line(e, err)}") from None


def io_quantization(model_bytes: bytes) -> dict[str, Any]:
    """{"input": {dtype, scale, zero_point}, "output": {...}} read back with the runtime."""
    from edgelite.device.runtime import _tflite_interpreter_module

    mod, _ = _tflite_interpreter_module()
    it = mod.Interpreter(model_content=model_bytes)
    out = {}
    for key, details in (("input", it.get_input_details()[0]), ("output", it.get_output_details()[0])):
        scale, zero = details.get("quantization", (0.0, 0))
        out[key] = {"dtype": np.dtype(details["dtype"]).name, "scale": float(scale), "zero_point": int(zero),
                    "shape": [int(d) for d in details["shape"]]}
    return out


def weight_sparsity(model_bytes: bytes) -> dict[str, float]:
    """Zero fraction of the weight tensors of CONV_2D / FULLY_CONNECTED ops in the file itself:
    proof that pruning survived conversion (and quantization)."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    obj = fu.convert_bytearray_to_object(bytearray(model_bytes))
    zeros = total = 0
    for sg in obj.subgraphs:
        for op in sg.operators:
            name = fu.opcode_to_name(obj, op.opcodeIndex)
            if name not in ("CONV_2D", "FULLY_CONNECTED") or len(op.inputs) < 2 or op.inputs[1] < 0:
                continue
            t = sg.tensors[op.inputs[1]]
            data = obj.buffers[t.buffer].data
            if data is None or len(data) == 0:
                continue
            a = np.asarray(data, np.uint8)
            if t.type == 0:  # FLOAT32
                a = a.view(np.float32)
            elif t.type == 1:  # FLOAT16
                a = a.view(np.float16)
            zeros += int((a == 0).sum())
            total += a.size
    return {"weight_sparsity": zeros / total if total else 0.0, "weights": total}


def _first_error_line(e: Exception, err) -> str:
    text = str(e) or type(e).__name__
    for line in text.splitlines():
        if "error:" in line:
            return line.split("error:", 1)[1].strip()[:240]
    try:
        for line in err().splitlines():
            if "error:" in line:
                return line.split("error:", 1)[1].strip()[:240]
    except ValueError:
        pass
    return first_line(e, 240)
