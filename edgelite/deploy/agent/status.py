"""What is on the device and how it runs: status, logs, the previous release, uninstall, facts; and the
clean-up after a healthy switch (`gc`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from edgelite.deploy.agent import DEFAULT_HTTP, KEEP
from edgelite.deploy.agent.health import health_url, probe_health
from edgelite.deploy.agent.layout import AgentError, Layout, discard, now_iso, sweep
from edgelite.deploy.agent.service import log_tail, service_remove, service_state
from edgelite.deploy.agent.trust import trusted_keys
from edgelite.errors import EXIT_USAGE
from edgelite.jsonfile import read_json
from edgelite.remote.layout import FAILED_SUFFIX, RELEASE_JSON, VENV_READY


def gc(lay: Layout, keep: int = KEEP) -> list[str]:
    """Keep the `keep` newest releases (by the agent's sequence) and the current one; drop what no kept release
    uses (each folder renamed out of the way before it is deleted: a power cut mid-way leaves no half of one
    under its name)."""
    if keep < 1:
        raise AgentError(f"keep {keep}: at least 1 release stays (the current one)", EXIT_USAGE)
    cur = lay.current_rid()
    good = lay.release_ids()
    kept = set(good[-keep:]) | ({cur} if cur else set())
    removed = [f"{d.name}/{n}" for d in (lay.releases, lay.bundles, lay.venvs) for n in sweep(d)]
    for p in lay.releases.iterdir() if lay.releases.is_dir() else []:
        if p.name.endswith(FAILED_SUFFIX):
            failed = sorted(q.name for q in lay.releases.iterdir() if q.name.endswith(FAILED_SUFFIX))
            if p.name in failed[-2:]:
                continue  # keep the last failures for their logs
        elif p.name in kept or not p.is_dir() or p.name.startswith("."):
            continue
        discard(p)
        removed.append(p.name)
    rels = [read_json(lay.releases / r / RELEASE_JSON) or {} for r in kept]
    used_b = {r.get("bundle") for r in rels}
    used_v = {r.get("venv") for r in rels}
    used_m = {r.get("source") for r in rels}
    for d, used in ((lay.bundles, used_b), (lay.venvs, used_v)):
        for p in d.iterdir() if d.is_dir() else []:
            if not p.name.startswith(".") and p.name not in used:
                discard(p)
                removed.append(f"{d.name}/{p.name}")
                if d == lay.venvs:  # its build lock (run/venv-<env>.lock) goes with it
                    (lay.run / f"venv-{p.name}.lock").unlink(missing_ok=True)
    for p in lay.media.iterdir() if lay.media.is_dir() else []:
        if str(p) not in used_m:
            p.unlink()
            removed.append(f"media/{p.name}")
    return removed + _gc_wheels(lay, used_v)


def _gc_wheels(lay: Layout, venvs: set) -> list[str]:
    """Drop the pushed wheels no kept venv was built from (each venv's `.ready` lists them): an --offline
    wheelhouse is ~100 MB, and a new one came with every change of the pins. A kept venv that does not say
    (made by an older agent), or names one elsewhere, keeps them all."""
    used: set[Path] = set()
    for v in venvs:
        info = read_json(lay.venvs / str(v) / VENV_READY)
        if not isinstance(info, dict) or not isinstance(info.get("wheels"), list):
            return []
        for w in info["wheels"]:
            try:
                parts = Path(str(w)).relative_to(lay.wheels).parts
            except ValueError:  # not under this folder as written (another spelling of it?): remove nothing
                return []
            used.add(lay.wheels.joinpath(*parts[:2]))  # edgelite/<digest>, deps/<house>, tools/<uv wheel>, constraints
            if parts[0] == "tools" and len(parts) > 1:
                used.add(lay.wheels / "tools" / Path(parts[1]).stem)  # uv's binary, unpacked beside its wheel
    removed = []
    for group in (lay.wheels, *(lay.wheels / g for g in ("edgelite", "deps", "tools"))):
        for p in group.iterdir() if group.is_dir() else []:
            if p.name.startswith(".") or p in used or (group == lay.wheels and p.is_dir()):
                continue
            if p.is_dir():
                discard(p)
            else:
                p.unlink(missing_ok=True)
            removed.append(str(p.relative_to(lay.root)))
    return removed


def status(lay: Layout) -> dict:
    svc = lay.service()
    cur = lay.current_rid()
    # both clocks, as the device has them: its wall clock (a Pi without an RTC may be far off; release
    # `created` times come from it) and the time since boot (monotonic, what the agent's timers use)
    clock = {"device_time": now_iso(), "since_boot_s": round(time.clock_gettime(time.CLOCK_BOOTTIME), 1)}
    out = {"dir": str(lay.root), "service": svc, "current": None, "releases": [], "health": None, "clock": clock,
           "trusted": trusted_keys(lay), "state": service_state(lay, svc) if lay.root.exists() else None}
    for rid in lay.release_ids():
        rel = read_json(lay.releases / rid / RELEASE_JSON) or {}
        out["releases"].append({"id": rid, "bundle": rel.get("bundle"), "meta": rel.get("meta"),
                                "current": rid == cur, "seq": rel.get("seq"), "created": rel.get("created")})
    if lay.releases.is_dir():
        out["failed"] = sorted(p.name.removesuffix(FAILED_SUFFIX) for p in lay.releases.iterdir() if p.name.endswith(FAILED_SUFFIX))
    if cur:
        rel = read_json(lay.releases / cur / RELEASE_JSON) or {}
        out["current"] = rel
        url = health_url(rel.get("http", DEFAULT_HTTP))
        code, body = probe_health(url)
        out["health"] = {"http": code, "body": body, "url": url}
    return out


def previous(lay: Layout) -> dict:
    """The release a rollback goes to: the newest good release older than the current one."""
    cur = lay.current_rid()
    ids = lay.release_ids()  # in the agent's order (its sequence), whatever the device clock said
    older = ids[:ids.index(cur)] if cur in ids else ids
    return {"current": cur, "previous": older[-1] if older else None}


def cmd_status(lay: Layout, req: dict) -> dict:
    return status(lay)


def cmd_previous(lay: Layout, req: dict) -> dict:
    return previous(lay)


def cmd_logs(lay: Layout, req: dict) -> dict:
    """The last `lines` lines of the service's log; with `follow`, the log goes on to stderr until killed."""
    svc, n = lay.service(), int(req.get("lines", 50))
    if not req.get("follow"):
        return {"lines": log_tail(lay, svc, n)}
    if svc.get("mode") in ("systemd", "systemd-user"):
        cmd = ["journalctl", "--user"] if svc["mode"] == "systemd-user" else ["journalctl"]
        subprocess.call(cmd + ["-u", f"{svc['unit']}.service", "-n", str(n), "--no-pager", "-f"], stdout=sys.stderr)
        return {"lines": []}
    for line in log_tail(lay, svc, n):
        print(line, file=sys.stderr)
    sys.stderr.flush()
    with open(lay.log, "rb") as f:
        f.seek(0, 2)
        while True:
            chunk = f.read()
            if chunk:
                sys.stderr.write(chunk.decode("utf-8", "replace"))
                sys.stderr.flush()
            else:
                time.sleep(0.3)


def cmd_uninstall(lay: Layout, req: dict) -> dict:
    """Stop and remove the service, then the agent's own entries under DIR; anything else there stays
    (and so does DIR, unless it is empty then)."""
    if not lay.agent.exists() or not (lay.marker.exists() or lay.releases.is_dir()):
        raise AgentError(f"{lay.root} does not look like an edgelite deploy directory; not removing it", EXIT_USAGE)
    lay.check_owned()
    service_remove(lay, lay.service())
    for p in lay.entries():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    kept = sorted(p.name for p in lay.root.iterdir())
    if not kept:
        lay.root.rmdir()
    return {"removed": str(lay.root), "kept": kept}
