"""`edgelite bench`: latency, size, memory and accuracy per format × threads — here or on the device.

Wiring only; the work is in `edgelite.bench.run` and `edgelite.bench.report` (imported when the
command runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgelite.remote.connection import Connection, add_connection_arguments, used_without_host

EXAMPLES = """\
examples:
  edgelite bench bundles/demo                               every format, threads 1,2,4 (up to the cores)
  edgelite bench bundles/demo --formats fp32,int8 --threads 4 --runs 500 --plot bench.png
  edgelite bench model_int8.tflite --data photos/val         a bare model file, top-1 on a class-folder set
  edgelite bench bundles/demo --pipeline clip.mp4           the whole camera loop, per stage
  edgelite bench bundles/demo --out benchmarks/results      JSON + CSV + PNG named after this machine
  edgelite bench bundles/demo --host pi@raspberrypi.local --out results/   on the Pi, over SSH
  edgelite bench bundles/demo --formats int8 --min-top1 0.85 --max-p50 25   CI: exit 3 when a row misses
  edgelite bench bundles/demo --pick [--host pi@raspberrypi.local]   what `run --format auto` picks, measured

Rows: one per format × thread count, status ok / load failed / validation failed. Only invoke() is
timed (after --warmup runs); FPS = 1000 / mean ms. Set the CPU governor to `performance` first on a Pi.
"""


def register(subparsers) -> None:
    if "bench" in subparsers.choices:
        return  # already registered (edgelite.cli lists this module; edgelite.device.cli may register it too)
    p = subparsers.add_parser(
        "bench", help="latency percentiles, size, memory and top-1 per model format (here or on a device)",
        description=__doc__.splitlines()[0], epilog=EXAMPLES)
    p.add_argument("targets", nargs="+", metavar="BUNDLE|MODEL",
                   help="bundle directories and/or .tflite/.onnx files (with --host: local paths are copied "
                        "over; prefix device: for a path already on the device)")
    p.add_argument("--formats", default="all",
                   help="comma-separated bundle formats (fp32,fp16,dynamic,int8,...,edgetpu,onnx; aliases as in convert: "
                        "tflite, half, ...) or all (default)")
    p.add_argument("--threads", "--num-threads", dest="threads", default=None, metavar="N[,N...]",
                   help="comma-separated thread counts (default: 1,2,4 up to the cores; --num-threads is the old name)")
    p.add_argument("--runs", type=int, default=200, help="timed invokes per row, at least (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed invokes before timing (default 20)")
    p.add_argument("--min-seconds", type=float, default=0.0, metavar="S",
                   help="keep timing until S seconds have passed, even after --runs (default 0)")
    p.add_argument("--data", metavar="DIR",
                   help="top-1 on DIR/<class>/*.jpg or an .npz (images, labels); default: the bundle's held-out split")
    p.add_argument("--pipeline", metavar="SOURCE",
                   help="also time the whole camera loop (capture, preprocess, inference, postprocess, total) "
                        "on a video file, image folder, camera index or picamera2")
    p.add_argument("--json", metavar="-|FILE", help="write the result JSON to FILE or - (stdout; a directory = <env>.json in it)")
    p.add_argument("--csv", metavar="FILE", help="write one CSV line per row (a directory = <env>.csv in it)")
    p.add_argument("--plot", metavar="FILE.png", help="write the latency / accuracy figure (a directory = <env>.png)")
    p.add_argument("--out", metavar="DIR", help="write <env>.json, <env>.csv and <env>.png into DIR, named after "
                                                "the board, CPU architecture, runtime and threads")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier result of the same name in --out DIR (default: write <env>-2.*)")
    p.add_argument("--min-top1", type=float, metavar="X",
                   help="exit 3 when a row's top-1 is below X (0..1) or unknown: a CI gate on the device")
    p.add_argument("--max-p50", type=float, metavar="MS",
                   help="exit 3 when a row's median latency is above MS milliseconds: a CI gate on the device")
    p.add_argument("--pick", action="store_true",
                   help="run the short trial `edgelite run --format auto` runs (one bundle; every validated model x "
                        "threads) and print each candidate's p50 and FPS and the pick (--formats is ignored)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="run every row in this process (faster start; no per-model memory, no crash isolation)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    add_connection_arguments(p, host_required=False,
                             title="on a device (--host: run the bench there over SSH and fetch the result)")
    p.set_defaults(func=_run)


def _output_path(value: str | None, stem: str, suffix: str) -> Path | None:
    """FILE as given; an existing directory (or one ending in /) gets <stem><suffix> inside it."""
    if value is None or value == "-":
        return None
    p = Path(value)
    if value.endswith(("/", "\\")) or p.is_dir():
        return p / f"{stem}{suffix}"
    return p


def _result_paths(opts, stem: str) -> tuple[Path | None, Path | None, Path | None, str | None]:
    """Where the JSON, CSV and PNG go. Names made from the environment (--out DIR, or a folder given to --json/
    --csv/--plot) never replace an earlier result without --overwrite: the next free `<stem>-N` is used, and the
    note says so. A FILE named outright is written as named."""
    def paths(s: str) -> list[Path | None]:
        got = [_output_path(v, s, suf) for v, suf in ((opts.json, ".json"), (opts.csv, ".csv"), (opts.plot, ".png"))]
        if opts.out:
            got = [g or Path(opts.out) / f"{s}{suf}" for g, suf in zip(got, (".json", ".csv", ".png"), strict=True)]
        return got

    def derived(s: str) -> list[Path]:
        named = {Path(v) for v in (opts.json, opts.csv, opts.plot) if v and v != "-"}
        return [p for p in paths(s) if p is not None and p not in named]

    first = paths(stem)
    if opts.overwrite or not any(p.exists() for p in derived(stem)):
        return (*first, None)
    n = 2
    while any(p.exists() for p in derived(f"{stem}-{n}")):
        n += 1
    taken = ", ".join(str(p) for p in derived(stem) if p.exists())
    return (*paths(f"{stem}-{n}"), f"bench: kept the earlier {taken}; writing {stem}-{n}.* "
                                   "(--overwrite replaces it)")


def options_from_args(args: argparse.Namespace):
    """argparse namespace -> BenchOptions, by field name; the SSH flags make its `connection`."""
    from edgelite.bench.options import BenchOptions
    from edgelite.options import from_namespace

    if not args.host and used_without_host(args):
        from edgelite.bench.errors import BenchUsageError

        raise BenchUsageError(f"{', '.join(used_without_host(args))} only apply with --host USER@HOST")
    return from_namespace(BenchOptions, args, connection=Connection.from_args(args) if args.host else None)


def _run(args: argparse.Namespace) -> int:
    # a bad option or input raises BenchUsageError (an edgelite.errors.UsageError): edgelite.cli prints
    # it as one line with its exit code
    from edgelite.bench import report
    from edgelite.bench.options import gate_misses
    from edgelite.bench.stats import OK

    opts = options_from_args(args)
    if opts.connection is not None:
        from edgelite.bench.remote import bench_remote

        progress = opts.progress if opts.progress is not None else sys.stderr.isatty()
        result = bench_remote(None, args.targets, opts, progress=progress)
    elif opts.pick:
        from edgelite.bench.pick import bench_pick

        result = bench_pick(args.targets, opts)
    else:
        from edgelite.bench.run import bench

        result = bench(args.targets, opts)

    stem = result.get("stem") or "bench"
    written: list[Path] = []
    json_path, csv_path, plot_path, note = _result_paths(opts, stem)
    if note:
        print(note, file=sys.stderr)
    if opts.json == "-":
        report.write_json(result, sys.stdout)
    else:
        print(report.format_table(result))
        if result.get("pick"):
            print(report.format_pick(result["pick"]))
    if json_path:
        report.write_json(result, json_path)
        written.append(json_path)
    if csv_path:
        report.write_csv(result, csv_path)
        written.append(csv_path)
    if plot_path:
        from edgelite.bench.plot import plot_result

        written.append(plot_result(result, plot_path))
    if written and opts.json != "-":
        print("wrote " + ", ".join(str(p) for p in written))
    misses = gate_misses(result["rows"], opts.min_top1, opts.max_p50)
    if misses:
        from edgelite.bench.errors import BenchGateFailed

        raise BenchGateFailed(f"{len(misses)} of {len(result['rows'])} rows miss the gate: " + "; ".join(misses))
    return 0 if any(r["status"] == OK for r in result["rows"]) else 1
