"""Latency at the size users deploy: EfficientNet-Lite0 and MobileNetV2 at 224x224, every CPU format.

    python benchmarks/bench_224.py                 # builds the bundles once (cached), then alternating rounds
    python benchmarks/bench_224.py --rounds 5 --runs 200 --threads 1,2

The models have RANDOM-INIT weights (no hub is reachable here; latency does not depend on the weight values,
and the int8 calibration sees the same images for TFLite and ONNX Runtime): their top-1 means nothing.

Per backbone: TFLite fp32 / fp16 / int8 (per-channel, and a per-tensor int8 twin), ONNX fp32 and ONNX int8
(onnxruntime static QDQ, `edgelite convert --formats onnx_int8`). Each round runs `edgelite bench` over
every model in turn (one process per row), so drift of this shared machine hits every format alike; the
ratios are computed per round (paired) and their median is reported, with the `uptime` load of each round.
An extra probe times the int8 model with and without LiteRT's default XNNPACK delegate (bare invoke(),
same process) to tell whether XNNPACK runs the int8 graph at all.

Writes benchmarks/results/latency_224_<environment>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKBONES = ("efficientnet_lite0", "mobilenet_v2")
FORMATS = "fp32,fp16,int8,onnx,onnx_int8"
SIZE = 224
INT8_GOAL = 0.45


def build_bundles(cache: Path, calibration: int) -> dict[str, Path]:
    """{label: bundle dir} for each backbone (+ a per-tensor int8 twin), converted once and cached."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgelite.convert import convert
    from edgelite.train.demo_data import write_image_folder

    data = cache / "data"
    write_image_folder(data, per_class=12, seed=0)  # Fashion-MNIST photos: calibration + held-out split
    out: dict[str, Path] = {}
    for backbone in BACKBONES:
        keras_file = cache / f"{backbone}_{SIZE}.keras"
        if not keras_file.exists():
            from edgelite.train.model import build_classifier

            build_classifier(backbone, 10, SIZE, weights=None).save(keras_file)  # random-init weights
        for label, extra in ((backbone, {"formats": FORMATS}),
                             (f"{backbone}_per_tensor", {"formats": "int8", "per_tensor": True})):
            b = cache / label
            if not (b / "edgelite.json").exists():
                t = time.perf_counter()
                convert(keras_file, b, data=data, calibration=calibration, verbose=False, **extra)
                print(f"bench_224: converted {label} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            out[label] = b
    return out


def xnnpack_probe(model: Path, threads: int, runs: int) -> dict[str, float]:
    """p50 ms of bare invoke() with LiteRT's default delegates (XNNPACK) and with the builtin kernels only."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    out = {}
    img = np.random.default_rng(0).integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
    for label, resolver in (("xnnpack", OpResolverType.AUTO),
                            ("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)):
        it = Interpreter(model_path=str(model), num_threads=threads, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], img)
        for _ in range(5):
            it.invoke()
        out[label] = p50_ms(it.invoke, runs)
    return out


def p50_ms(invoke, n: int) -> float:
    """Median ms of `n` timed calls of `invoke`."""
    ts = []
    for _ in range(n):
        t = time.perf_counter_ns()
        invoke()
        ts.append(time.perf_counter_ns() - t)
    return float(np.median(ts) / 1e6)


def interleaved(bundles: dict[str, Path], threads: list[int], rounds: int = 15, batch: int = 10) -> list[dict]:
    """Paired ratios from ONE process: every model loaded once, then `rounds` x (`batch` invokes of each model
    in turn); the p50 of each model within a round, ratios per round, median over rounds. Drift of a shared
    machine is seconds long, a round is well under a second per model: the pairs see the same machine."""
    from edgelite.device.runtime import load_model

    img = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    files = {"fp32": "model_fp32.tflite", "int8": "model_int8.tflite", "onnx": "model.onnx",
             "onnx_int8": "model_int8.onnx"}
    out = []
    for b in BACKBONES:
        for t in threads:
            models = {k: load_model(bundles[b] / f, num_threads=t) for k, f in files.items()}
            models["int8_per_tensor"] = load_model(bundles[f"{b}_per_tensor"] / "model_int8.tflite", num_threads=t)
            for m in models.values():
                m.set_input(img)
                for _ in range(3):
                    m.invoke()
            per_round = []
            load = os.getloadavg()[0]
            for _ in range(rounds):
                per_round.append({k: p50_ms(m.invoke, batch) for k, m in models.items()})
            med = {k: float(np.median([r[k] for r in per_round])) for k in models}
            pair = lambda a, c, rs=per_round: float(np.median([r[a] / r[c] for r in rs]))  # noqa: E731
            out.append({"backbone": b, "threads": t, "loadavg_before": round(load, 2), "p50_ms": med,
                        "tflite_int8/fp32": pair("int8", "fp32"), "tflite_int8_per_tensor/fp32": pair("int8_per_tensor", "fp32"),
                        "onnx_int8/onnx_fp32": pair("onnx_int8", "onnx"), "tflite_int8/onnx_int8": pair("int8", "onnx_int8"),
                        "tflite_fp32/onnx_fp32": pair("fp32", "onnx")})
            print(f"bench_224: interleaved {b} t{t}: " + json.dumps({k: round(v, 3) for k, v in out[-1].items()
                                                                      if "/" in k}), file=sys.stderr)
    return out


def interleaved_markdown(rows: list[dict]) -> list[str]:
    fmt = lambda v: f"{v:.2f}"  # noqa: E731
    md = ["## Interleaved in one process (the paired figure)", "",
          "Every model loaded once in one process, then rounds of 10 invokes of each model in turn; ratios per "
          "round, median over rounds.", "",
          "| backbone | threads | load | TFLite fp32 | int8 | int8 per-tensor | ONNX fp32 | ONNX int8 | TFLite int8/fp32 "
          "| per-tensor/fp32 | ORT int8/fp32 | LiteRT int8 / ORT int8 | LiteRT fp32 / ORT fp32 |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = r["p50_ms"]
        md.append(f"| {r['backbone']} | {r['threads']} | {r['loadavg_before']} | {fmt(p['fp32'])} | {fmt(p['int8'])} | "
                  f"{fmt(p['int8_per_tensor'])} | {fmt(p['onnx'])} | {fmt(p['onnx_int8'])} | "
                  f"{fmt(r['tflite_int8/fp32'])} | {fmt(r['tflite_int8_per_tensor/fp32'])} | "
                  f"{fmt(r['onnx_int8/onnx_fp32'])} | {fmt(r['tflite_int8/onnx_int8'])} | {fmt(r['tflite_fp32/onnx_fp32'])} |")
    return md + [""]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(Path.home() / ".cache/edgelite/bench224"))
    ap.add_argument("--calibration", type=int, default=100)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    ap.add_argument("--interleaved-only", action="store_true",
                    help="only the in-process interleaved rounds (bundles from the cache); writes latency_224_interleaved_*")
    args = ap.parse_args(argv)

    bundles = build_bundles(Path(args.cache), args.calibration)
    from edgelite.bench.env import read_environment
    from edgelite.bench.options import parse_threads
    from edgelite.bench.run import bench

    threads = parse_threads(args.threads)
    if args.interleaved_only:
        from edgelite.bench.env import environment_stem

        env = read_environment()
        rows = interleaved(bundles, threads)
        out = Path(args.out)
        stem = "latency_224_interleaved_" + environment_stem(env, threads)
        (out / f"{stem}.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
        md = [f"# Latency at 224x224, interleaved: {env.get('cpu')}", "",
              "Random-init weights (latency only). CPU vector extensions: "
              f"{', '.join(env.get('cpu_vector_extensions') or [])}.", ""] + interleaved_markdown(rows)
        md += ["Reproduce: `" + " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_224.py", *argv]) + "`", ""]
        (out / f"{stem}.md").write_text("\n".join(md))
        print("\n".join(md))
        return 0
    rounds: list[dict] = []
    for r in range(args.rounds):
        load = os.getloadavg()
        res = bench([str(p) for p in bundles.values()], threads=threads, runs=args.runs, warmup=args.warmup,
                    data=None)
        p50 = {}
        for row in res["rows"]:
            if row["status"] == "ok" and row.get("latency_ms"):
                label = Path(row["target"]).name
                p50[f"{label}/{row['name']}/t{row['threads']}"] = row["latency_ms"]["p50"]
        probe = {f"{b}/t{t}": xnnpack_probe(bundles[b] / "model_int8.tflite", t, args.runs // 2)
                 for b in BACKBONES for t in threads}
        rounds.append({"round": r, "loadavg_before": [round(x, 2) for x in load], "p50_ms": p50,
                       "xnnpack_probe_ms": probe})
        print(f"bench_224: round {r + 1}/{args.rounds} done (load {load[0]:.2f})", file=sys.stderr)

    def med(key):
        vals = [x["p50_ms"].get(key) for x in rounds]
        vals = [v for v in vals if v]
        return float(np.median(vals)) if vals else None

    def ratio(a, b):
        vals = [x["p50_ms"][a] / x["p50_ms"][b] for x in rounds if a in x["p50_ms"] and b in x["p50_ms"]]
        return float(np.median(vals)) if vals else None

    table, ratios = [], []
    for b in BACKBONES:
        for t in threads:
            row = {"backbone": b, "threads": t}
            for f in FORMATS.split(","):
                row[f] = med(f"{b}/{f}/t{t}")
            row["int8_per_tensor"] = med(f"{b}_per_tensor/int8/t{t}")
            table.append(row)
            ratios.append({"backbone": b, "threads": t,
                           "tflite_int8/fp32": ratio(f"{b}/int8/t{t}", f"{b}/fp32/t{t}"),
                           "tflite_int8_per_tensor/fp32": ratio(f"{b}_per_tensor/int8/t{t}", f"{b}/fp32/t{t}"),
                           "onnx_int8/onnx_fp32": ratio(f"{b}/onnx_int8/t{t}", f"{b}/onnx/t{t}"),
                           "tflite_int8/onnx_int8": ratio(f"{b}/int8/t{t}", f"{b}/onnx_int8/t{t}"),
                           "tflite_fp32/onnx_fp32": ratio(f"{b}/fp32/t{t}", f"{b}/onnx/t{t}"),
                           "int8_builtin/int8_xnnpack": float(np.median(
                               [x["xnnpack_probe_ms"][f"{b}/t{t}"]["builtin"] / x["xnnpack_probe_ms"][f"{b}/t{t}"]["xnnpack"]
                                for x in rounds]))})
    inter = interleaved(bundles, threads)
    env = read_environment()
    result = {"environment": env, "settings": vars(args), "rounds": rounds, "table": table, "ratios": ratios,
              "interleaved": inter,
              "note": "random-init weights (latency only; top-1 is meaningless)"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from edgelite.bench.env import environment_stem

    stem = "latency_224_" + environment_stem(env, threads)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    md = [f"# Latency at 224x224: {env.get('cpu')}", "",
          "EfficientNet-Lite0 and MobileNetV2 with **random-init weights** (latency only; no hub is reachable "
          "here). p50 ms = median over rounds of each round's `edgelite bench` p50 "
          f"({args.runs} timed invokes after {args.warmup} warm-up, one process per row).", "",
          f"CPU vector extensions: {', '.join(env.get('cpu_vector_extensions') or []) or 'n/a'}; "
          f"cores {env.get('cores')}; runtimes {env.get('runtimes')}.", "",
          "Shared 2-core machine (other engineers' tests running): load average before each round "
          + ", ".join(str(x["loadavg_before"][0]) for x in rounds) + ". Figures are noisy; ratios are paired "
          "per round.", "",
          "| backbone | threads | TFLite fp32 | fp16 | int8 | int8 per-tensor | ONNX fp32 | ONNX int8 |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
    for r in table:
        md.append(f"| {r['backbone']} | {r['threads']} | {fmt(r['fp32'])} | {fmt(r['fp16'])} | {fmt(r['int8'])} | "
                  f"{fmt(r['int8_per_tensor'])} | {fmt(r['onnx'])} | {fmt(r['onnx_int8'])} |")
    md += ["", "| backbone | threads | TFLite int8/fp32 (goal <= 0.45) | per-tensor int8/fp32 | ORT int8/fp32 | "
               "LiteRT int8 / ORT int8 | LiteRT fp32 / ORT fp32 | int8 without XNNPACK / with |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ratios:
        md.append(f"| {r['backbone']} | {r['threads']} | {fmt(r['tflite_int8/fp32'])} | "
                  f"{fmt(r['tflite_int8_per_tensor/fp32'])} | {fmt(r['onnx_int8/onnx_fp32'])} | "
                  f"{fmt(r['tflite_int8/onnx_int8'])} | {fmt(r['tflite_fp32/onnx_fp32'])} | "
                  f"{fmt(r['int8_builtin/int8_xnnpack'])} |")
    md += [""] + interleaved_markdown(inter)
    md += ["Reproduce: `" + " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_224.py", *argv]) + "`", ""]
    (out / f"{stem}.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
