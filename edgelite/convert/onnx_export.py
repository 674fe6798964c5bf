"""Keras -> ONNX with tf2onnx (opset <= 18, explicit input signature), checked with onnx.checker.

The ONNX graph takes uint8 NHWC pixels (a Cast is its first node), like the TFLite exports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgelite.convert.errors import ConvertError
from edgelite.errors import first_line
from edgelite.train.tfenv import captured_stderr, import_tensorflow

DEFAULT_OPSET = 17
MAX_OPSET = 18  # tf2onnx 1.17 has no opset 19+ table


def export_onnx(model, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    if not 9 <= opset <= MAX_OPSET:
        raise ConvertError(f"--opset {opset}: tf2onnx 1.17 supports opsets 9..{MAX_OPSET}")
    try:
        import onnx

        import_tensorflow()  # tf2onnx imports TensorFlow: with its environment set and its start-up quiet
        import tf2onnx
    except ImportError as e:
        raise ConvertError(f"ONNX export needs {e.name or 'tf2onnx and onnx'}: pip install 'edgelite[onnx]'") from None
    from edgelite.convert.tflite import OUTPUT_NAME, serving_function

    module, fn = serving_function(model, "uint8")
    spec = tuple(fn.structured_input_signature[0])
    with captured_stderr():
        try:
            proto, _ = tf2onnx.convert.from_function(module.serve, input_signature=spec, opset=opset, output_path=str(path))
        except Exception as e:  # tf2onnx raises whatever its handlers raise
            raise ConvertError(f"tf2onnx failed: {first_line(e, 240)}") from None
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # onnx.checker.ValidationError and shape-inference errors
        raise ConvertError(f"onnx.checker rejects the exported model: {first_line(e, 240)}") from None
    inputs = [(i.name, i.type.tensor_type.elem_type) for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    if outputs != [OUTPUT_NAME]:
        raise ConvertError(f"ONNX export produced outputs {outputs}, expected [{OUTPUT_NAME!r}]")
    return {"opset": opset, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
            "input": inputs[0][0], "file": Path(path).name}
