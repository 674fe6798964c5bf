"""The switch as one device-side transaction: `current` -> the new release, restart, health, or roll back.

Run detached (`"detach": true`) so that it finishes even when the workstation is killed mid-way.
"""

from __future__ import annotations

import contextlib
import os

from edgelite.deploy.agent import HEALTH_TIMEOUT, KEEP
from edgelite.deploy.agent.health import wait_healthy
from edgelite.deploy.agent.layout import AgentError, Layout, atomic_symlink, now_iso, say
from edgelite.deploy.agent.service import log_tail, service_start, service_stop
from edgelite.deploy.agent.status import gc, previous
from edgelite.deploy.agent.trust import check_trusted
from edgelite.deploy.agent.unit import UnitCheck
from edgelite.errors import EXIT_UNHEALTHY, EXIT_USAGE
from edgelite.jsonfile import fsync_dir, write_text_atomic
from edgelite.remote.layout import FAILED_SUFFIX

HISTORY_MAX_BYTES = 1 << 20  # log/deploys.log: one line a switch; over this it becomes deploys.log.1


def _history(lay: Layout, line: str) -> None:
    lay.logs.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if lay.deploys_log.stat().st_size > HISTORY_MAX_BYTES:  # bounded: this and one older file
            os.replace(lay.deploys_log, lay.deploys_log.with_name(lay.deploys_log.name + ".1"))
    with open(lay.deploys_log, "a") as f:
        f.write(f"{now_iso()} {line}\n")


def boot_id() -> str:
    """This boot's id (Linux); "" where there is none, and then no trial is ever taken back."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _trial(lay: Layout, rid: str, prev: str | None) -> None:
    """Put the switch to `rid` on trial until it proves healthy: should the device go down first (a power
    cut), `rid`'s run script finds this in the next boot and goes back to `prev` (release.RUN_TEMPLATE)."""
    write_text_atomic(lay.trial, f"{boot_id()}\n{rid}\n{prev or ''}\n", mode=0o600)


def _end_trial(lay: Layout) -> None:
    with contextlib.suppress(FileNotFoundError):
        lay.trial.unlink()
        fsync_dir(lay.run)


def _switch(lay: Layout, rid: str | None) -> None:
    if rid is None:
        with contextlib.suppress(FileNotFoundError):
            lay.current.unlink()
    else:
        atomic_symlink(f"releases/{rid}", lay.current)


def commit(lay: Layout, rid: str, health_timeout: float, no_service: bool = False, keep: int | None = KEEP) -> dict:
    """Make `rid` current and prove it healthy (then gc keeps the `keep` newest releases; None: a rollback, which
    removes nothing); otherwise go back to what was serving. Returns the result."""
    with lay.locked():
        svc = lay.service()
        rel = lay.release(rid)
        check_trusted(lay, lay.bundles / str(rel.get("bundle")))  # before anything is switched (rollback too)
        prev = lay.current_rid()
        say(f"switch: current -> releases/{rid} (was {prev or 'nothing'})")
        # what `current` will point at (bundle, venv, release) on the disk before it does: after a power cut
        # the device boots the old release or a complete new one
        os.sync()
        _trial(lay, rid, prev if prev != rid else None)
        _switch(lay, rid)
        _history(lay, f"switch {prev or '-'} -> {rid}")
        check = UnitCheck(lay, svc)  # runs while the service restarts
        if no_service or svc["mode"] == "none":  # nothing to prove healthy: old releases go all the same
            _end_trial(lay)
            if keep:
                gc(lay, keep)
            return {"ok": True, "release": rid, "previous": prev, "health": None, "unit": _unit(check, svc),
                    "note": "--no-service: not started"}
        say(f"restart: {svc['mode']} service {svc['unit']}")
        try:
            service_start(lay, svc)
            os.sync()  # the unit systemd was given (/etc/systemd/system) and its enable link survive a power cut
            ok, why, body = wait_healthy(lay, svc, rel, health_timeout)
        except AgentError as e:  # e.g. sudo refused: the switch must still be undone
            ok, why, body = False, str(e), None
        unit = _unit(check, svc)
        if ok:
            say(f"health: {why}")
            _end_trial(lay)
            _history(lay, f"healthy {rid}")
            if keep:
                gc(lay, keep)
            return {"ok": True, "release": rid, "previous": prev, "health": body, "why": why, "unit": unit}
        say(f"health: {why}")
        tail = log_tail(lay, svc, 25)
        result = {"ok": False, "release": rid, "previous": prev, "why": why, "log_tail": tail, "unit": unit}
        if prev and prev != rid and (lay.releases / prev).is_dir():
            say(f"rollback: current -> releases/{prev}")
            _switch(lay, prev)
            _end_trial(lay)  # `prev` served before this deploy: nothing to prove
            _history(lay, f"unhealthy {rid}: {why}; back to {prev}")
            try:
                service_start(lay, svc)
                ok2, why2, body2 = wait_healthy(lay, svc, lay.release(prev), health_timeout)
            except AgentError as e:
                ok2, why2, body2 = False, str(e), None
            say(f"rollback health: {why2}")
            result.update(rolled_back_to=prev, previous_healthy=ok2, previous_health=body2)
        else:
            say("rollback: nothing to go back to; stopping the service")
            service_stop(lay, svc)
            _switch(lay, None)
            _end_trial(lay)
            _history(lay, f"unhealthy {rid}: {why}; nothing to go back to")
            result.update(rolled_back_to=None)
        if lay.current_rid() != rid:
            (lay.releases / rid).rename(lay.releases / f"{rid}{FAILED_SUFFIX}")
        return result


def _unit(check: UnitCheck, svc: dict) -> dict:
    unit = check.result()
    if unit["findings"]:
        say(f"systemd-analyze verify {svc.get('unit', 'edgelite')}.service: {unit['findings']}")
    return unit


def cmd_commit(lay: Layout, req: dict) -> dict:
    """`commit(release)`; an unhealthy release is a failure reply (exit 6) that still carries every field."""
    keep = req.get("keep", KEEP)
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise AgentError(f"keep {keep!r}: a number of releases, at least 1 (the current one)", EXIT_USAGE)
    result = commit(lay, str(req["release"]), float(req.get("health_timeout", HEALTH_TIMEOUT)), bool(req.get("no_service")),
                    keep)
    if not result["ok"]:
        raise AgentError(unhealthy_message(result), EXIT_UNHEALTHY, **result)
    return result


def unhealthy_message(result: dict) -> str:
    """The one line for a release that was not healthy (the failure reply's `error`; deploy and fleet print it)."""
    head = f"release {result.get('release')} was not healthy ({result.get('why')})"
    back = result.get("rolled_back_to")
    if not back:
        return f"{head}; nothing to go back to, the service is stopped"
    again = "and it is healthy again" if result.get("previous_healthy") else "BUT IT IS NOT HEALTHY EITHER"
    return f"{head}; switched back to {back} {again}"


def cmd_rollback(lay: Layout, req: dict) -> dict:
    """Commit the previous release (the newest good one older than `current`)."""
    prev = previous(lay)
    if not prev["previous"]:
        raise AgentError(f"nothing to roll back to: {prev['current'] or 'no release'} is the oldest release kept",
                         EXIT_USAGE, current=prev["current"])
    return cmd_commit(lay, {**req, "release": prev["previous"], "keep": None})  # a rollback removes nothing
