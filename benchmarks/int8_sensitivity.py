"""Where does the demo's int8 loss come from? TFLite's QuantizationDebugger per-layer error, then the
top-k layers by RMSE/scale kept in float (the rest int8), each scored on the held-out split.

    python benchmarks/int8_sensitivity.py runs/demo

Same export as `edgelite convert --formats int8` (300 random training images to calibrate, uint8 in/out),
plus float kernels allowed for the kept layers. Writes benchmarks/results/int8_sensitivity.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--keep", default="0,1,2,3,5,8,12", help="how many of the worst layers to keep in float")
    ap.add_argument("--name", default="int8_sensitivity")
    args = ap.parse_args(argv)

    from edgelite.convert.source import open_source
    from edgelite.convert.tflite import calibration_dataset, serving_function
    from edgelite.convert.validate import keras_scores, run_file
    from edgelite.stats import format_delta, paired_delta
    from edgelite.train.tfenv import import_tensorflow

    tf = import_tensorflow()
    src = open_source(args.run)
    test_x, test_y, _ = src.images("test")
    train_x, _, _ = src.images("train")
    model = src.load_model()
    ref_ok = keras_scores(model, test_x, src.spec).argmax(1) == test_y
    calib = train_x[np.random.default_rng(0).permutation(len(train_x))[:300]]
    debug_x = train_x[np.random.default_rng(1).permutation(len(train_x))[:64]]

    def debugger(denylist=()):
        module, fn = serving_function(model, "float32")
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = calibration_dataset(calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        conv.inference_input_type = conv.inference_output_type = tf.uint8
        opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylist)) if denylist else None
        return tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=lambda: ([img[None].astype(np.float32)] for img in debug_x),
            debug_options=opts)

    t = time.perf_counter()
    dbg = debugger()
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    layers = list(csv.DictReader(io.StringIO(buf.getvalue())))
    for r in layers:
        scale = float(r["scale"])
        r["rmse_over_scale"] = float(np.sqrt(float(r["mean_squared_error"])) / scale) if scale else 0.0
    layers.sort(key=lambda r: -r["rmse_over_scale"])
    print(f"debugger: {len(layers)} layers in {time.perf_counter() - t:.0f} s", flush=True)

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"int8-sens-{os.getpid()}.tflite"
    rows = []
    for k in (int(v) for v in args.keep.split(",")):
        tmp.write_bytes(debugger([r["tensor_name"] for r in layers[:k]]).get_nondebug_quantized_model()
                        if k else dbg.get_nondebug_quantized_model())
        scores, ms, _ = run_file(tmp, "tflite", test_x, src.spec)
        ok = scores.argmax(1) == test_y
        d = paired_delta(ok, ref_ok)
        rows.append({"float_layers": k, "top1": round(float(ok.mean()), 4), "delta": round(d["delta"], 2),
                     "ci": [round(v, 2) for v in d["ci"]], "bytes": tmp.stat().st_size, "ms_per_image": round(ms, 3),
                     "kept": [f"{r['op_name']} {r['tensor_name'].split(';')[0]}" for r in layers[:k]]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "kept"}), flush=True)
    tmp.unlink(missing_ok=True)
    cmd = "python benchmarks/int8_sensitivity.py " + " ".join(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    top = [{"op": r["op_name"], "tensor": r["tensor_name"].split(";")[0], "rmse_over_scale": round(r["rmse_over_scale"], 3)}
           for r in layers[:12]]
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"command": cmd, "images": int(len(test_y)),
                                                            "worst_layers": top, "rows": rows}, indent=1) + "\n")
    md = [f"# int8 with the worst layers kept in float, {len(test_y)} held-out images", "", f"`{cmd}`", "",
          "Worst layers by the debugger's RMSE / output scale (error in output quantization steps):", ""]
    md += [f"{i + 1}. {t['op']} `{t['tensor']}`: {t['rmse_over_scale']}" for i, t in enumerate(top)]
    md += ["", "| layers kept in float | top-1 | Δ top-1 [95 % CI] | bytes | ms/img (validation) |", "|---|---|---|---|---|"]
    md += [f"| {r['float_layers']} | {r['top1']:.3f} | {format_delta(r['delta'], r['ci'])} | {r['bytes']} | "
           f"{r['ms_per_image']} |" for r in rows]
    md += ["", f"float (Keras) top-1 {float(ref_ok.mean()):.3f}. 0 = the plain int8 export (float kernels allowed "
           "but none used)."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
