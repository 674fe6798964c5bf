"""Reading the agent's replies for `deploy` and `fleet`: the status record, a failure reply as a DeployError.

Sending requests is `edgelite.remote.agent.Agent` (shared with `bench --host`); the protocol itself is
written down in `edgelite.deploy.agent` (the package docstring).
"""

from __future__ import annotations

from edgelite.deploy.errors import EXIT_REMOTE, DeployError


def read_status(reply: dict) -> dict:
    """The agent's `status` reply as one flat record: `edgelite deploy --status` and `edgelite fleet status`
    both read it here.

    >>> r = read_status({"dir": "/home/pi/edgelite", "current": {"id": "r1", "format": "int8",
    ...     "meta": {"sha256": {"int8": "ab12cd34ef56"}, "edgelite": "0.4.0"}},
    ...     "state": {"state": "running", "active": True, "pid": 7},
    ...     "health": {"http": 200, "body": {"status": "ok", "fps": 9.5, "model": "int8"}}})
    >>> r["release"], r["service"], r["pid"], r["model"], r["model_sha256"], r["fps"], r["edgelite"]
    ('r1', 'running', 7, 'int8', 'ab12cd34', 9.5, '0.4.0')
    """
    cur = reply.get("current") or {}
    meta = cur.get("meta") or {}
    svc, state = reply.get("service") or {}, reply.get("state") or {}
    health = reply.get("health") or {}
    body = health.get("body") if isinstance(health.get("body"), dict) else {}
    model = body.get("model") or cur.get("format") or next(iter(meta.get("models") or []), None)
    wheel = str(meta.get("wheel") or "")
    return {
        "dir": reply.get("dir"), "mode": svc.get("mode"), "unit": svc.get("unit"),
        "service": state.get("state") or ("running" if state.get("active") else "stopped"),
        "pid": state.get("pid") if state.get("active") else None, "restarts": state.get("restarts", 0),
        "release": cur.get("id"), "bundle": cur.get("bundle"), "source": cur.get("source"),
        "http": cur.get("http"), "format": cur.get("format"),
        "model": model, "model_sha256": ((meta.get("sha256") or {}).get(model) or "")[:8] or None,
        "edgelite": meta.get("edgelite") or (wheel.split("-")[1] if wheel.count("-") >= 2 else None),
        "health": (str(health.get("body")) if health and not body else None),
        "health_http": health.get("http"), "health_status": body.get("status"), "health_model": body.get("model"),
        "frames": body.get("frames"), "fps": body.get("fps"), "last_result_age_s": body.get("last_result_age_s"),
        "pick": pick_text(body.get("pick")),
        "releases": [r["id"] for r in reply.get("releases") or []], "failed": reply.get("failed") or [],
        "trusted": reply.get("trusted"),
        "device_time": (reply.get("clock") or {}).get("device_time"),
        "since_boot_s": (reply.get("clock") or {}).get("since_boot_s"),
    }


def pick_text(pick) -> str | None:
    """How the running model was chosen, in one short line (the service's /healthz `pick`).

    >>> pick_text({"model": "int8", "threads": 2, "how": "cached", "why": "fastest of 4 measured: p50 3.1 ms"})
    'int8 x2, cached: fastest of 4 measured: p50 3.1 ms'
    """
    if not isinstance(pick, dict):
        return None
    threads = f" x{pick['threads']}" if pick.get("threads") else ""
    return f"{pick.get('model')}{threads}, {pick.get('how')}: {pick.get('why')}"


def failure(reply: dict, what: str) -> DeployError:
    """A DeployError for a failure reply: `what: error`, with the agent's exit code."""
    return DeployError(f"{what}: {reply.get('error')}", int(reply.get("exit_code") or EXIT_REMOTE))
