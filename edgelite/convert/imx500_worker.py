"""Runs INSIDE the IMX500 venv (scripts/imx500-venv.sh: Keras 2.15, MCT, numpy 1.26), never in edgelite's own.

`edgelite.convert.imx500` starts it as ``IMX500_VENV/bin/python imx500_worker.py REQUEST.json``: it loads
the float model edgelite exported for Keras 2.15, quantizes it with MCT's post-training quantization and
the IMX500 target platform capabilities on the calibration images, scores the quantized Keras model on
the held-out images and exports it for `imxconv-tf`. Standard library + numpy + Sony's packages only: no
edgelite import (edgelite is not installed there). The reply is one JSON line on stdout; a failure is
``{"error": "..."}`` and exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
import time


def quantize(req: dict) -> dict:
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import model_compression_toolkit as mct

    t0 = time.perf_counter()
    model = keras.models.load_model(req["model"], compile=False)
    calib = np.load(req["calibration"]).astype(np.float32)
    test = np.load(req["test"]).astype(np.float32)
    batch = max(1, min(int(req.get("batch", 16)), len(calib)))

    def representative_data_gen():
        for i in range(0, len(calib), batch):
            yield [calib[i:i + batch]]

    tpc = mct.get_target_platform_capabilities("tensorflow", "imx500", req.get("tpc_version", "v1"))
    t1 = time.perf_counter()
    quantized, _ = mct.ptq.keras_post_training_quantization(model, representative_data_gen,
                                                            target_platform_capabilities=tpc)
    t2 = time.perf_counter()
    scores = np.asarray(quantized.predict(test, batch_size=32, verbose=0), np.float32)
    float_scores = np.asarray(model.predict(test, batch_size=32, verbose=0), np.float32)
    np.save(req["scores"], scores)
    np.save(req["float_scores"], float_scores)
    mct.exporter.keras_export_model(model=quantized, save_model_path=req["quantized"])
    import platform

    return {"mct": mct.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "python": platform.python_version(),
            "load_seconds": round(t1 - t0, 2), "ptq_seconds": round(t2 - t1, 2),
            "calibration_images": int(len(calib)), "test_images": int(len(test))}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(json.dumps({"error": "usage: imx500_worker.py REQUEST.json"}))
        return 2
    with open(argv[1], encoding="utf-8") as f:
        req = json.load(f)
    try:
        reply = quantize(req)
    except Exception as e:  # the parent turns this into a one-line ConvertError; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        print(json.dumps({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}))
        return 1
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
