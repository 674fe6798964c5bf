"""Convert the demo run to the format matrix and record the issue's figures.

    .venv/bin/python benchmarks/convert_demo.py                      # runs/demo -> benchmarks/results/
    .venv/bin/python benchmarks/convert_demo.py --run runs/other --work /tmp/bench

Conversions of the same run (a thin wrapper over `edgelite.convert.convert`):

1. defaults: fp32, fp16, dynamic, int8, onnx and pruned_int8 (``--prune 0.5``, unstructured, per-channel);
2. qat_int8 (``--qat``, per-channel);
3. int8 with ``--per-tensor`` (post-training: the per-channel scales are part of the int8 file size);
4. qat_int8 with ``--qat --per-tensor`` (the per-tensor file, with QAT to win back what PTQ loses);
5. pruned_int8 + pqat_int8 with ``--prune 0.5 --prune-block 4 --prune-epochs 6 --qat --per-tensor``
   (the smallest gzip: zeros in runs, one scale per tensor), and pqat_int8 the same way without blocks;
6. with ``--sweep 0.65,0.75``: unstructured pruned_int8 at other sparsities.

Each size figure is reported twice: with the defaults, and with the options that shrink the files,
each next to the top-1 it costs. Writes ``benchmarks/results/convert_demo.md`` and ``convert_demo.json``:
the figures with their targets, one table of every format (size, gzip size, top-1, Δ vs float,
agreement), and the environment (TensorFlow version, machine, CPU count).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/demo", help="run directory (default runs/demo)")
    ap.add_argument("--work", default="bundles/convert-bench", help="where the bundles go (default bundles/convert-bench)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="result folder")
    ap.add_argument("--name", default="convert_demo", help="result file stem (default convert_demo)")
    ap.add_argument("--prune", type=float, default=0.5)
    ap.add_argument("--prune-epochs", type=int, default=3)
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--calibration", type=int, default=300)
    ap.add_argument("--block", type=int, default=4, help="--prune-block of the small-files run (default 4)")
    ap.add_argument("--block-prune-epochs", type=int, default=6, help="--prune-epochs of the small-files run (default 6)")
    ap.add_argument("--sweep", default="", metavar="S1,S2", help="also prune to these sparsities (e.g. 0.65,0.75)")
    args = ap.parse_args(argv)

    from edgelite.convert import convert

    work = Path(args.work)
    t0 = time.perf_counter()
    common = {"calibration": args.calibration, "qat_epochs": args.qat_epochs, "overwrite": True}  # a re-run replaces its own bundles
    runs = {}
    runs["main"] = convert(args.run, work / "main", formats="fp32,fp16,dynamic,int8,onnx", prune=args.prune,
                           prune_epochs=args.prune_epochs, **common)
    runs["qat"] = convert(args.run, work / "qat", formats="qat_int8", qat=True, **common)
    runs["per_tensor"] = convert(args.run, work / "per_tensor", formats="int8", per_tensor=True, **common)
    runs["per_tensor_qat"] = convert(args.run, work / "per_tensor_qat", formats="qat_int8", qat=True, per_tensor=True,
                                     **common)
    small = f" (blocks of {args.block}, {args.block_prune_epochs} prune epochs, per-tensor)"
    labels = {"per_tensor": " (per-tensor)", "per_tensor_qat": " (per-tensor)", "small": small,  # row-name suffixes
              "small_unstructured": f" (unstructured, {args.block_prune_epochs} prune epochs, per-tensor)"}
    runs["small"] = convert(args.run, work / "small", formats="pruned_int8,pqat_int8", prune=args.prune,
                            prune_block=args.block, prune_epochs=args.block_prune_epochs, qat=True, per_tensor=True,
                            **common)
    # the same without blocks: how much of the gzip figure the runs of zeros make
    runs["small_unstructured"] = convert(args.run, work / "small_unstructured", formats="pqat_int8", prune=args.prune,
                                         prune_epochs=args.block_prune_epochs, qat=True, per_tensor=True, **common)
    for s in [float(v) for v in args.sweep.split(",") if v.strip()]:
        runs[f"sweep_{s:g}"] = convert(args.run, work / f"sweep_{s:g}", formats="pruned_int8", prune=s,
                                       prune_epochs=args.prune_epochs, calibration=args.calibration)
    seconds = time.perf_counter() - t0

    ref = runs["main"].info["reference"]
    rows = []
    for key, bundle in runs.items():
        for m in bundle.models:
            name = m.name + (f" ({float(key[6:]):.0%} sparsity)" if key.startswith("sweep_") else labels.get(key, ""))
            met = m.metrics or {}
            rows.append({"format": name, "status": m.status, "error": m.error, "bytes": m.bytes,
                         "gzip_bytes": m.gzip_bytes, "top1": met.get("top1"), "delta_pts": met.get("delta"),
                         "agreement": met.get("agreement"), "max_prob_diff": met.get("max_prob_diff"),
                         "ms_per_image_host": met.get("ms_per_image"), "sparsity": m.extra.get("sparsity"),
                         "input_quantization": (m.quantization or {}).get("input")})
    by = {r["format"]: r for r in rows}
    fp32 = by.get("fp32", {})

    def figure(what, settings, fmt, value, target):
        row = by.get(fmt, {})
        v = value(row)
        return {"what": what, "settings": settings, "format": fmt, "value": v, "target": f"<= {target}",
                "met": v is not None and v <= target, "top1_drop_pts": _neg(row.get("delta_pts"))}

    def bytes_ratio(row):
        return row["bytes"] / fp32["bytes"] if row.get("bytes") and fp32.get("bytes") else None

    def gzip_ratio(row):
        return row["gzip_bytes"] / fp32["gzip_bytes"] if row.get("gzip_bytes") and fp32.get("gzip_bytes") else None

    def drop(row):
        return _neg(row.get("delta_pts"))

    size_opts = f"--prune {args.prune:g} --prune-block {args.block} --prune-epochs {args.block_prune_epochs} --qat --per-tensor"
    fig = {
        "int8_over_fp32_bytes": figure("int8 .tflite bytes / fp32 .tflite bytes", "defaults (per-channel)",
                                       "int8", bytes_ratio, 0.27),
        "int8_over_fp32_bytes_per_tensor_qat": figure("int8 .tflite bytes / fp32 .tflite bytes", "--qat --per-tensor",
                                                      "qat_int8 (per-tensor)", bytes_ratio, 0.27),
        "pruned_int8_gzip_over_fp32_gzip": figure("50 %-pruned int8 gzip bytes / fp32 gzip bytes",
                                                  f"defaults (--prune {args.prune:g}: unstructured, per-channel)",
                                                  "pruned_int8", gzip_ratio, 0.15),
        "pruned_int8_gzip_over_fp32_gzip_small": figure("50 %-pruned int8 gzip bytes / fp32 gzip bytes", size_opts,
                                                        "pqat_int8" + small, gzip_ratio, 0.15),
        "int8_top1_drop_pts": figure("full-int8 top-1 drop vs float (points)", "defaults (post-training)", "int8",
                                     drop, 1.0),
        "qat_top1_drop_pts": figure("QAT int8 top-1 drop vs float (points)", "--qat", "qat_int8", drop, 0.5),
    }
    extra = {
        "int8_per_tensor_ptq_over_fp32_bytes": bytes_ratio(by.get("int8 (per-tensor)", {})),
        "pqat_unstructured_per_tensor_gzip_over_fp32_gzip": gzip_ratio(
            by.get("pqat_int8" + labels["small_unstructured"], {})),
        "int8_gzip_over_fp32_gzip": gzip_ratio(by.get("int8", {})),
        # the fine-tuned Keras models themselves (before int8): how much of a delta is training, not quantization
        "pruned_keras_top1": runs["main"].info.get("optimisation", {}).get("prune", {}).get("keras_top1"),
        "block_pruned_keras_top1": runs["small"].info.get("optimisation", {}).get("prune", {}).get("keras_top1"),
        # where the int8 bytes go: tensor data vs the per-channel (scale, zero point) arrays the schema stores
        **int8_breakdown(runs["main"], fp32.get("bytes")),
        "qat_keras_top1": runs["qat"].info.get("optimisation", {}).get("qat", {}).get("keras_top1"),
        "per_tensor_qat_keras_top1": runs["per_tensor_qat"].info.get("optimisation", {}).get("qat", {}).get("keras_top1"),
    }
    env = dict(runs["main"].info.get("environment", {}))
    env.update({"cpu_count": os.cpu_count(), "platform": platform.platform()})
    result = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "benchmarks/convert_demo.py", *(argv or sys.argv[1:])]),
        "run": str(Path(args.run).resolve()), "backbone": runs["main"].info["source"].get("backbone"),
        "input": runs["main"].input.to_dict(), "heldout_images": ref["images"], "float_top1": ref["top1"],
        "settings": {"prune": args.prune, "prune_epochs": args.prune_epochs, "qat_epochs": args.qat_epochs,
                     "calibration": args.calibration, "block": args.block,
                     "block_prune_epochs": args.block_prune_epochs},
        "figures": fig,
        "context": extra, "rows": rows, "seconds": round(seconds, 1), "environment": env,
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def int8_breakdown(bundle, fp32_bytes) -> dict:
    from tensorflow.lite.tools import flatbuffer_utils as fu

    entry = bundle.entry("int8")
    if not entry.path or not fp32_bytes:
        return {}
    obj = fu.read_model(str(bundle.root / entry.path))
    data = sum(len(b.data) for b in obj.buffers if b.data is not None)
    params = 0
    for sg in obj.subgraphs:
        for t in sg.tensors:
            q = t.quantization
            if q is not None and q.scale is not None and len(q.scale) > 1:
                params += len(q.scale)
    return {"int8_tensor_data_over_fp32_bytes": data / fp32_bytes, "int8_per_channel_params": params,
            "int8_per_channel_param_bytes": params * 12}  # float32 scale + int64 zero point each


def notes(r: dict) -> list[str]:
    """What the figures mean, from the measured numbers."""
    out = []
    c, f = r["context"], r["figures"]
    rows = {row["format"]: row for row in r["rows"]}
    if c.get("int8_per_channel_params"):
        pt = rows.get("int8 (per-tensor)", {})
        out.append(f"- int8 size with the defaults: the int8 tensor data alone is "
                   f"{_fmt(c['int8_tensor_data_over_fp32_bytes'])} of the fp32 file; the rest is "
                   f"{c['int8_per_channel_params']} per-channel quantization parameters "
                   f"({c['int8_per_channel_param_bytes'] / 1e6:.2f} MB: a float32 scale and an int64 zero point per "
                   "output channel of every conv/dense weight and bias, as the TFLite schema stores them). One scale "
                   f"per tensor gives {_fmt(c.get('int8_per_tensor_ptq_over_fp32_bytes'))}: post-training, top-1 "
                   f"{_signed(pt.get('delta_pts'))} points vs float; with --qat "
                   f"{_signed(_neg(f['int8_over_fp32_bytes_per_tensor_qat']['top1_drop_pts']))} points "
                   "(QAT's extra training on the training split).")
    small = f["pruned_int8_gzip_over_fp32_gzip_small"]
    out.append(f"- pruned gzip: unstructured 50 % zeros leave gzip ~1 bit of mask per weight plus ~8 bits per "
               f"surviving one, so the defaults give {_fmt(f['pruned_int8_gzip_over_fp32_gzip']['value'])}. Zeros in "
               f"runs of {r['settings']['block']} along the stored axis plus one scale per tensor give "
               f"{_fmt(small['value'])} with top-1 {_signed(_neg(small['top1_drop_pts']))} points vs float "
               f"({small['settings']}). The same without blocks (unstructured, per-tensor, PQAT): "
               f"{_fmt(c.get('pqat_unstructured_per_tensor_gzip_over_fp32_gzip'))}.")
    fp32_gz = rows.get("fp32", {}).get("gzip_bytes")
    sweep = [(k, v) for k, v in rows.items() if k.startswith("pruned_int8 (") and k.endswith("sparsity)")]
    if sweep and fp32_gz:
        out.append("- unstructured sweep: " + "; ".join(
            f"{k.split('(')[1].rstrip(')')} -> {_fmt(v['gzip_bytes'] / fp32_gz)} of fp32 gzip, top-1 "
            f"{_signed(v['delta_pts'])} points" for k, v in sweep) + ".")
    return out


def _neg(v):
    return -v if isinstance(v, (int, float)) else None


def _signed(v):
    return f"{v:+.1f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _fmt(v, digits=3):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "-"
    return str(v) if isinstance(v, int) else f"{v:.{digits}f}"


def markdown(r: dict) -> str:
    lines = [f"# convert: demo run figures ({r['created']})", "",
             f"Run `{r['run']}` ({r['backbone']}, {r['input']['height']}x{r['input']['width']}), "
             f"{r['heldout_images']} held-out images, float Keras top-1 {_fmt(r['float_top1'])}. "
             f"Command: `{r['command']}` ({r['seconds']} s).", "",
             "| figure | settings | value | target | met | top-1 drop (pts) |", "|---|---|---|---|---|---|"]
    for f in r["figures"].values():
        lines.append(f"| {f['what']} | {f['settings']} | {_fmt(f['value'])} | {f['target']} | "
                     f"{'yes' if f['met'] else '**no**'} | {_fmt(f['top1_drop_pts'], 1)} |")
    lines += ["", "Context: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in r["context"].items()), ""]
    lines += notes(r)
    lines += ["",
              "| format | status | MB | gzip MB | top-1 | Δ pts | agreement | max prob diff | sparsity |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        status = row["status"] + (f": {row['error']}" if row["error"] else "")
        lines.append(f"| {row['format']} | {status.replace('|', '/')} | {_fmt((row['bytes'] or 0) / 1e6, 2)} | "
                     f"{_fmt((row['gzip_bytes'] or 0) / 1e6, 2)} | {_fmt(row['top1'])} | {_fmt(row['delta_pts'], 1)} | "
                     f"{_fmt(row['agreement'])} | {_fmt(row['max_prob_diff'], 4)} | {_fmt(row['sparsity'])} |")
    env = r["environment"]
    lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
