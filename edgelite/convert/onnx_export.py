"""Keras -> ONNX with tf2onnx (opset <= 18, explicit input signature), checked with onnx.checker; and
ONNX -> int8 with onnxruntime's static QDQ quantization, calibrated on the same images as TFLite int8.

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


def quantize_onnx(fp32_path: str | os.PathLike, path: str | os.PathLike, calibration, *,
                  per_channel: bool = True) -> dict[str, Any]:
    """Static QDQ int8 of an fp32 ONNX file (onnxruntime.quantization): uint8 activations, int8 weights
    (per-channel unless `per_channel` is False), ranges from `calibration` (N, H, W, 3 uint8 images).

    U8S8 in QDQ form is what onnxruntime's CPU kernels run fastest on x86 (VNNI) and ARM; the uint8 pixel
    input and the Cast after it stay as they are, so the device feeds raw pixels as to every model.
    """
    import tempfile

    import numpy as np

    try:
        import onnx
        import onnxruntime
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise ConvertError(f"ONNX int8 needs {e.name or 'onnxruntime'}: pip install 'edgelite[onnx]'") from None
    if calibration is None or not len(calibration):
        raise ConvertError("ONNX int8 needs calibration images (--calibration N > 0)")
    name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    images = np.asarray(calibration, dtype=np.uint8)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(images)

        def get_next(self):
            img = next(self._it, None)
            return None if img is None else {name: img[None]}

    with tempfile.TemporaryDirectory() as tmp, captured_stderr():
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as e:  # onnxruntime.quantization raises whatever its passes raise
            raise ConvertError(f"onnxruntime quantization failed: {first_line(e, 240)}") from None
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise ConvertError(f"onnx.checker rejects the int8 model: {first_line(e, 240)}") from None
    return {"quantizer": f"onnxruntime {onnxruntime.__version__} quantize_static", "format": "QDQ",
            "activations": "uint8", "weights": "int8", "per_channel": per_channel,
            "calibration_images": int(len(images)), "file": Path(path).name}
