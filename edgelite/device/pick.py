"""`edgelite run --format auto` (the default) and `edgelite bench --pick`: which of a bundle's validated
models, and how many interpreter threads, run fastest on THIS device — decided by a short measured trial.

Which file is fastest depends on the CPU and the runtime (LiteRT int8 vs ONNX Runtime int8 trade places
between two x86 CPUs; XNNPACK's int8 is far ahead of fp32 on a Pi 4), so it is measured, not assumed:

1. candidates: every manifest model whose status is ``ok`` — a model that failed the accuracy gate at
   convert time is never loaded — except the Edge TPU's (`edgelite run` tries that first, as before),
   × thread counts 1, 2, 4 up to the cores (or only ``--threads N`` when given);
2. phase 1, smallest file first (a smaller file is usually the faster one, so a fast yardstick comes
   early): each candidate is loaded (sha256 verified), warmed up and its `invoke()` timed for a short
   slice (`edgelite.device.timing`, the timer of `edgelite bench` rows too). A candidate whose warm-up
   invokes are both over SCREEN times the fastest median so far is "screened out" after them, and so are
   its other thread counts that could not come within SCREEN even with perfect scaling: on an emulated
   Pi an fp32 invoke takes seconds, and timing it in full would make the trial a minute long;
3. phase 2: the FINALISTS fastest are timed in turns (at least MIN_TURNS, so a slow device decides on
   more than a handful of samples), so a burst of load from another process hits them alike; the pick
   is the lowest median of all its samples -- or, among the candidates within TIE of it, the fastest of
   those with the fewest threads: the trial times `invoke()` alone, while in the camera loop an
   interpreter thread competes with decoding, the preview and MQTT for the cores (on this 2-core machine
   int8 x2's invoke matched x1's but its loop ran 0.84x), so a thread must earn its place by more than noise.

The decision is cached in a JSON file keyed by the manifest's sha256 and the device (CPU model, cores,
machine, runtime versions, edgelite version, thread counts tried): a restart reuses it, a new bundle or an
upgraded runtime measures again. The folder is $EDGELITE_PICK_CACHE (a deployed release sets it to
DIR/cache), else $XDG_CACHE_HOME/edgelite/pick, else ~/.cache/edgelite/pick.

    >>> pick = decide(Bundle.load("bundles/demo"))                  # doctest: +SKIP
    >>> pick["model"], pick["threads"], pick["why"]                  # doctest: +SKIP
    ('onnx_int8', 1, 'fastest of 8 measured: p50 3.58 ms; next int8 x1 4.11 ms')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.bundle import MANIFEST, Bundle, BundleError, sha256_file
from edgelite.device.machine import cpu_cores, cpu_model, default_threads
from edgelite.device.timing import time_invokes

log = logging.getLogger("edgelite.device")

CACHE_ENV = "EDGELITE_PICK_CACHE"  # = edgelite.remote.layout.PICK_CACHE_ENV (the agent sets it; device/ cannot
# import it; tests/test_architecture.py holds the two equal)

PHASE1_SECONDS = 0.1  # per candidate
PHASE1_RUNS = 100  # a fast model stops here, before its slice is over
PHASE2_SECONDS = 1.2  # the finalists, in turns ...
PHASE2_RUNS = 300  # ... or until each has had this many (a fast model is decided in milliseconds)
MIN_TURNS = 4  # ... but at least this many turns, however slow the device
FINALISTS = 3
TURN = 5  # invokes per finalist per turn
WARMUP = 3  # the first two are timed for the screen (the first invoke often pays lazy set-up)
SCREEN = 3.0  # both warm-up invokes over SCREEN x the fastest median so far: not timed further
SCREENED = "screened out"
TIE = 0.03  # within 3 % of the fastest median: a tie, resolved toward fewer threads
LIMIT_SECONDS = 3.5  # phase 2 stops when the trial has taken this long (the whole trial: <= 5 s of start-up)
CACHE_SCHEMA = 1


def thread_counts(threads: int | None = None) -> list[int]:
    """The thread counts tried: `threads` alone when the user gave it, else 1, 2, 4 up to the cores."""
    return [int(threads)] if threads else default_threads()


def device_key() -> dict[str, Any]:
    """What makes a measurement stale when it changes: CPU, cores, machine, runtime and edgelite versions."""
    import edgelite
    from edgelite.device.runtime import runtime_versions

    rts = runtime_versions()
    return {"cpu": cpu_model(), "cores": cpu_cores(), "machine": platform.machine(), "edgelite": edgelite.__version__,
            "runtimes": {k: v for k, v in rts.items() if k in ("ai_edge_litert", "tflite_runtime", "onnxruntime")}}


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgelite" / "pick"


def cache_path(bundle: Bundle, threads: list[int], device: dict[str, Any]) -> Path:
    """The cache file of this bundle (its manifest's sha256) on this device with these thread counts."""
    key = {"manifest": sha256_file(bundle.root / MANIFEST), "device": device, "threads": threads}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / f"{digest}.json"


def candidates(bundle: Bundle, threads: list[int]) -> list[tuple[str, int]]:
    """(model name, threads) to try: the validated CPU models (status ok), smallest file first, × the thread
    counts (fewest first)."""
    names = [n for n in bundle.available() if n != "edgetpu"]
    if not names:
        raise BundleError(f"bundle {bundle.root} has no usable CPU model (entries: "
                          f"{', '.join(f'{m.name} {m.status}' for m in bundle.models)}); re-run `edgelite convert`")
    names.sort(key=lambda n: bundle.entry(n).bytes or 0)  # stable: the manifest's order among equals
    return [(n, t) for n in names for t in sorted(threads)]


def _row(name: str, threads: int) -> dict[str, Any]:
    return {"name": name, "threads": threads, "status": "ok", "error": None, "samples_ns": []}


def trial(bundle: Bundle, threads: list[int]) -> dict[str, Any]:
    """Measure every candidate (phase 1), then the finalists in turns (phase 2); the decision with its rows."""
    from edgelite.device.runtime import load_from_bundle

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, bundle.input.height, bundle.input.width, 3), dtype=np.uint8)
    rows: list[dict[str, Any]] = []
    loaded: dict[int, Any] = {}  # row index -> model, kept for the finalists only
    fastest_ms: dict[str, tuple[float, int]] = {}  # model -> (its quickest single invoke, at how many threads)
    for name, th in candidates(bundle, threads):
        row = _row(name, th)
        rows.append(row)
        best = min((_p50(rows[i]) for i in loaded), default=float("inf")) / 1e6
        if name in fastest_ms and fastest_ms[name][0] * fastest_ms[name][1] / th > SCREEN * best:
            ms, at = fastest_ms[name]
            row.update(status=SCREENED, error=f"x{at} took {ms:.4g} ms an invoke: even {th} threads cannot come "
                                              f"within {SCREEN:g}x of the fastest ({best:.4g} ms)")
            continue
        t = time.perf_counter()
        try:
            model, _ = load_from_bundle(bundle, name, num_threads=th)
            row["load_ms"] = round((time.perf_counter() - t) * 1e3, 2)
            row["runtime"] = model.runtime
            first = time_invokes(model, images, runs=2)
            ms = min(first) / 1e6
            fastest_ms[name] = min(fastest_ms.get(name, (ms, th)), (ms, th))
            if ms > SCREEN * best:
                row.update(status=SCREENED, warmup_ms=round(ms, 3),
                           error=f"warm-up invoke {ms:.4g} ms, over {SCREEN:g}x the fastest ({best:.4g} ms)")
                continue
            time_invokes(model, images, runs=WARMUP - 2)
            row["samples_ns"] += time_invokes(model, images, runs=PHASE1_RUNS, max_seconds=PHASE1_SECONDS, min_runs=3)
        except Exception as e:  # a model this runtime cannot load or run here is not a candidate
            row.update(status="load failed", error=str(e).strip().splitlines()[0][:200] if str(e).strip()
                       else type(e).__name__)
            continue
        loaded[len(rows) - 1] = model
        keep = sorted(loaded, key=lambda i: _p50(rows[i]))[:FINALISTS]
        loaded = {i: loaded[i] for i in keep}  # the others are released: memory stays ~3 models
    phase1_s = time.perf_counter() - t0
    end = time.perf_counter() + min(PHASE2_SECONDS, max(0.0, LIMIT_SECONDS - phase1_s))
    turn = 0
    while len(loaded) > 1 and (time.perf_counter() < end or turn < MIN_TURNS) and turn * TURN < PHASE2_RUNS:
        for i, model in loaded.items():
            rows[i]["samples_ns"] += time_invokes(model, images, runs=TURN, offset=turn)
        turn += 1
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise BundleError(f"no model of {bundle.root} runs here: "
                          + "; ".join(f"{r['name']}: {r['error']}" for r in rows[:3]))
    for r in rows:
        samples = np.asarray(r.pop("samples_ns"), np.float64) / 1e6
        if samples.size:
            r.update(runs=int(samples.size), p50_ms=round(float(np.median(samples)), 4),
                     mean_ms=round(float(samples.mean()), 4), fps=round(1000.0 / float(samples.mean()), 1))
    ranked = sorted(ok, key=lambda r: r["p50_ms"])
    win, why = tie_break(ranked)
    skipped = [m.name for m in bundle.models if m.name not in bundle.available()]
    return {"schema": CACHE_SCHEMA, "manifest": sha256_file(bundle.root / MANIFEST), "model": win["name"],
            "threads": win["threads"], "how": "trial", "why": why, "trial_s": round(time.perf_counter() - t0, 3),
            "finalist_turns": turn, "rows": rows, "never_run": skipped, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def tie_break(ranked: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The pick among the measured rows (fastest median first) and why: the fastest, unless a row with fewer
    threads is within TIE of it (then the fastest of those with the fewest threads).

    >>> rows = [{"name": "int8", "threads": 2, "p50_ms": 0.84}, {"name": "qat_int8", "threads": 1, "p50_ms": 0.86},
    ...         {"name": "int8", "threads": 1, "p50_ms": 0.87}, {"name": "fp32", "threads": 1, "p50_ms": 1.6}]
    >>> win, why = tie_break(rows); (win["name"], win["threads"]), why
    (('qat_int8', 1), "fastest of 4 measured, by a tie: p50 0.86 ms, within 3% of int8 x2's 0.84 ms on fewer threads (the camera loop needs a core too)")
    >>> tie_break(rows[1:])[1]
    'fastest of 3 measured: p50 0.86 ms; next int8 x1 0.87 ms'
    """
    fastest = ranked[0]
    tied = [r for r in ranked if r["p50_ms"] <= fastest["p50_ms"] * (1 + TIE)]
    win = min(tied, key=lambda r: (r["threads"], ranked.index(r)))
    if win["threads"] < fastest["threads"]:
        return win, (f"fastest of {len(ranked)} measured, by a tie: p50 {win['p50_ms']:.3g} ms, within {TIE:.0%} of "
                     f"{fastest['name']} x{fastest['threads']}'s {fastest['p50_ms']:.3g} ms on fewer threads (the "
                     "camera loop needs a core too)")
    why = f"fastest of {len(ranked)} measured: p50 {win['p50_ms']:.3g} ms"
    nxt = [r for r in ranked if r is not win]
    if nxt:
        why += f"; next {nxt[0]['name']} x{nxt[0]['threads']} {nxt[0]['p50_ms']:.3g} ms"
    return win, why


def _p50(row: dict[str, Any]) -> float:
    return float(np.median(row["samples_ns"])) if row["samples_ns"] else float("inf")


def decide(bundle: Bundle, threads: int | None = None, *, use_cache: bool = True) -> dict[str, Any]:
    """The pick for `bundle` here: from the cache when it is fresh, else a trial (written to the cache).

    Returns {"model", "threads", "how": "trial" | "cached", "why", "trial_s", "rows": [per candidate ...],
    "never_run": [models the manifest marks failed], "device", "cache"}.
    """
    tried = thread_counts(threads)
    device = device_key()
    path = cache_path(bundle, tried, device)
    if use_cache:
        cached = _read_cache(path, bundle, tried)
        if cached is not None:
            cached["how"] = "cached"
            return cached
    pick = trial(bundle, tried)
    pick.update(device=device, cache=str(path))
    if use_cache:
        _write_cache(path, pick)
    return pick


def _read_cache(path: Path, bundle: Bundle, tried: list[int]) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA
            or data.get("model") not in bundle.available() or data.get("model") == "edgetpu"
            or data.get("threads") not in tried):
        return None  # another edgelite's file, or one naming what the trial never picks: measure again
    return data


def _write_cache(path: Path, pick: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(pick, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:  # a read-only home: the pick still holds, the next start measures again
        log.warning("format auto: cannot cache the trial in %s (%s); set $%s to a writable folder",
                    path.parent, e, CACHE_ENV)


def summary(pick: dict[str, Any]) -> dict[str, Any]:
    """The pick as /healthz and `deploy --status` show it (no per-sample data)."""
    return {k: pick.get(k) for k in ("model", "threads", "how", "why", "trial_s", "measured")} | {
        "candidates": [{k: r.get(k) for k in ("name", "threads", "status", "p50_ms", "fps")} for r in pick.get("rows") or []]}


def load_picked(bundle: Bundle, name: str | None = None, *, threads: int | None = None,
                edgetpu_device: str = "", use_cache: bool = True):
    """(model, entry, pick summary) for `edgelite run`: `name` forces a model (no trial, no fallback); None or
    "auto" takes the Edge TPU model when its delegate loads, else the trial's pick (`decide`)."""
    from edgelite.device.runtime import ModelLoadError, load_from_bundle

    if name not in (None, "auto"):
        model, entry = load_from_bundle(bundle, name, num_threads=threads, edgetpu_device=edgetpu_device)
        return model, entry, {"model": entry.name, "threads": threads, "how": "forced", "why": f"--format {name}"}
    if "edgetpu" in bundle.available():
        try:
            model, entry = load_from_bundle(bundle, "edgetpu", num_threads=threads, edgetpu_device=edgetpu_device)
            return model, entry, {"model": entry.name, "threads": threads, "how": "edgetpu",
                                  "why": "the Edge TPU delegate loaded"}
        except ModelLoadError as e:
            log.warning("Edge TPU model not used (%s); falling back to the fastest CPU model, measured", e)
    pick = decide(bundle, threads, use_cache=use_cache)
    model, entry = load_from_bundle(bundle, pick["model"], num_threads=pick["threads"])
    log.info("format auto: %s x%d threads, %s (%s)", pick["model"], pick["threads"], pick["why"],
             f"trial {pick['trial_s']:.1f} s" if pick["how"] == "trial" else f"cached from {pick.get('measured')}")
    return model, entry, summary(pick)
