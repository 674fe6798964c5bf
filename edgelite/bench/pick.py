"""`edgelite bench BUNDLE --pick [--host ...]`: the trial of `edgelite run --format auto` (`edgelite.device.pick`),
afresh, as a bench result: one row per candidate, the manifest's failed models as rows that never ran, and the
decision (`report.format_pick` prints it under the table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgelite.bundle import Bundle
from edgelite.device.pick import summary, thread_counts, trial


def bench_pick(paths: list[str], opts) -> dict[str, Any]:
    """`edgelite bench BUNDLE --pick`: a fresh trial (the cache is neither read nor written) as a bench result
    — one row per candidate, plus the manifest's failed models as rows that never ran — with the decision."""
    from edgelite.bench.env import environment_stem, read_environment
    from edgelite.bench.errors import BenchUsageError
    from edgelite.bench.report import SCHEMA

    opts.validate()
    if len(paths) != 1 or not Path(paths[0]).is_dir():
        raise BenchUsageError("--pick measures one bundle directory: edgelite bench BUNDLE --pick")
    bundle = Bundle.load(paths[0])
    tried = opts.thread_list() if opts.threads else thread_counts()
    pick = trial(bundle, tried)
    rows = []
    for r in pick["rows"]:
        e = bundle.entry(r["name"])
        rows.append({"target": paths[0], "name": r["name"], "format": e.format, "precision": e.precision,
                     "threads": r["threads"], "status": r["status"], "error": r["error"], "top1": None,
                     "size_mb": round(e.bytes / 1e6, 6) if e.bytes else None, "load_ms": r.get("load_ms"),
                     "latency_ms": {"n": r.get("runs"), "p50": r.get("p50_ms"), "mean": r.get("mean_ms")},
                     "fps": r.get("fps"), "runtime": r.get("runtime"),
                     "picked": (r["name"], r["threads"]) == (pick["model"], pick["threads"])})
    for name in pick["never_run"]:
        e = bundle.entry(name)
        rows.append({"target": paths[0], "name": name, "format": e.format, "precision": e.precision, "threads": None,
                     "status": e.status, "error": f"never run: {e.error or e.status} (manifest)", "top1": None})
    env = read_environment()
    return {"schema": SCHEMA, "created": pick["measured"], "edgelite": env.get("edgelite"),
            "stem": environment_stem(env, tried) + "-pick", "environment": env,
            "settings": {"pick": True, "threads": tried}, "targets": [{"path": paths[0], "kind": "bundle"}],
            "rows": rows, "warnings": list(env.get("warnings") or []), "pick": summary(pick) | {
                "never_run": pick["never_run"], "trial_s": pick["trial_s"]}}
