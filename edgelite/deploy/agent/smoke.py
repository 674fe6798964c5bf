"""The smoke test: one inference with a new bundle, through the very command the service runs."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from edgelite.deploy.agent.layout import AgentError, Layout
from edgelite.deploy.agent.trust import check_trusted
from edgelite.errors import EXIT_SMOKE
from edgelite.jsonfile import read_json
from edgelite.manifest import MANIFEST, sha256_file
from edgelite.remote.layout import PICK_CACHE_ENV


def write_ppm(path: Path, width: int = 64, height: int = 48) -> None:
    """A mid-grey frame OpenCV reads without any library on our side (binary PPM)."""
    path.write_bytes(b"P6\n%d %d\n255\n" % (width, height) + bytes([128]) * (width * height * 3))


def cmd_smoke(lay: Layout, req: dict) -> dict:
    """`edgelite run BUNDLE --source <one frame> --max-frames 1 --json -` in the new venv; exit 5 if it fails."""
    py = lay.venv_bin(str(req["env"]), "python")
    bundle = lay.bundles / str(req["bundle"])
    check_trusted(lay, bundle)  # the smoke test runs the model: not one this device's trust list refuses
    timeout = float(req.get("timeout") or 300)
    with tempfile.TemporaryDirectory(prefix="edgelite-smoke-") as tmp:
        write_ppm(Path(tmp) / "frame.ppm")
        cmd = [str(py), "-m", "edgelite", "run", str(bundle), "--source", tmp, "--max-frames", "1",
               "--json", "-", "--print-every", "0", "-q"]
        if req.get("format"):
            cmd += ["--format", str(req["format"])]
        t0 = time.monotonic()
        try:
            # `--format auto` measures its pick here, into the cache the service reads: a start without a trial
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp,
                               env={**os.environ, PICK_CACHE_ENV: str(lay.cache)})
        except subprocess.TimeoutExpired:
            raise AgentError(f"no result within {timeout:.0f} s", EXIT_SMOKE) from None
    # `edgelite run --json -` writes one JSON object per result line
    results = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not results:
        err = [ln for ln in r.stderr.strip().splitlines() if ln.strip()][-3:]
        raise AgentError(" / ".join(err) or "no result", EXIT_SMOKE, run_exit_code=r.returncode)
    result = json.loads(results[-1])
    return {"seconds": round(time.monotonic() - t0, 2), "label": result.get("label"), "score": result.get("score"),
            "inference_ms": result.get("timings_ms", {}).get("inference"),
            "pick": None if req.get("format") not in (None, "auto") else read_pick(lay, bundle)}


def read_pick(lay: Layout, bundle: Path) -> dict | None:
    """The newest measured pick of `bundle` in DIR/cache (`edgelite.device.pick` writes it): model, threads,
    why, trial seconds and each candidate's row; None without one (an Edge TPU model needs no trial)."""
    manifest = sha256_file(bundle / MANIFEST)
    best, newest = None, -1.0
    for p in lay.cache.glob("*.json") if lay.cache.is_dir() else []:
        data = read_json(p)
        if isinstance(data, dict) and data.get("manifest") == manifest and p.stat().st_mtime > newest:
            best, newest = data, p.stat().st_mtime
    return None if best is None else {k: best.get(k) for k in ("model", "threads", "why", "trial_s", "measured", "rows")}
