"""`edgelite fleet status|logs`: one row per host from the device agent's `status` reply, and a host's log.

    >>> row_from("pi1", {"deployed": True, "status": {"current": {"id": "r1", "meta": {"edgelite": "0.4.0",
    ...     "sha256": {"int8": "ab12cd34ef56"}}}, "state": {"state": "running", "active": True},
    ...     "health": {"http": 200, "body": {"status": "ok", "fps": 9.5, "model": "int8"}}}})["model"]
    'int8 ab12cd34'
"""

from __future__ import annotations

import json
import sys

from edgelite.fleet.errors import EXIT_FLEET, EXIT_USAGE, FleetError
from edgelite.fleet.runner import run_playbook

COLUMNS = ("host", "reachable", "release", "model", "service", "health", "fps", "edgelite")


def row_from(name: str, h: dict) -> dict:
    """A host's status row from its report (`edgelite_report` of the status tasks, or unreachable)."""
    row = dict.fromkeys(COLUMNS)
    row.update(host=name, reachable=not h.get("unreachable"), error=h.get("error"))
    st = h.get("status") if h.get("deployed") else None
    if not row["reachable"] or st is None:
        row["service"] = "unreachable" if not row["reachable"] else "nothing deployed"
        return row
    cur = st.get("current") or {}
    meta = cur.get("meta") or {}
    state = st.get("state") or {}
    health = st.get("health") or {}
    body = health.get("body") if isinstance(health.get("body"), dict) else {}
    model = body.get("model") or cur.get("format") or next(iter(meta.get("models") or []), None)
    sha = (meta.get("sha256") or {}).get(model) or ""
    wheel = str(meta.get("wheel") or "")
    row.update(release=cur.get("id"), model=(f"{model} {sha[:8]}".strip() if model else None),
               service=state.get("state") or ("running" if state.get("active") else "stopped"),
               health=(f"{health.get('http')} {body.get('status')}" if body else
                       (str(health.get("body")) if health else None)),
               fps=body.get("fps"),
               edgelite=meta.get("edgelite") or (wheel.split("-")[1] if wheel.count("-") >= 2 else None),
               failed=st.get("failed") or [])
    return row


def status(inventory, limit: str | None = None, forks: int = 5, out=None, as_json: bool = False) -> list[dict]:
    """Every host's row; prints the table (or JSON). Unreachable hosts are rows too (exit 9 after the table)."""
    out = out or sys.stdout
    _, report = run_playbook("status", inventory, {}, limit=limit, forks=forks,
                             out=sys.stderr if as_json else out)
    rows = [row_from(name, h) for name, h in sorted(report["hosts"].items()) if name != "localhost"]
    print(json.dumps(rows, indent=1) if as_json else format_rows(rows), file=out, flush=True)
    down = [r["host"] for r in rows if not r["reachable"]]
    if down:
        raise FleetError(f"{len(down)} of {len(rows)} hosts did not answer: {', '.join(down)}", EXIT_FLEET)
    return rows


def format_rows(rows: list[dict]) -> str:
    def cell(v) -> str:
        return "-" if v is None else ("yes" if v is True else "no" if v is False else str(v))

    table = [COLUMNS] + [tuple(cell(r[c]) for c in COLUMNS) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table)


def logs(inventory, host: str, lines: int = 50, out=None) -> list[str]:
    """The last `lines` lines of the service's log on `host` (one inventory host name)."""
    out = out or sys.stdout
    if not host or any(c in host for c in ",:!&*[]"):
        raise FleetError(f"edgelite fleet logs: name ONE inventory host, not a pattern ({host!r})", EXIT_USAGE)
    _, report = run_playbook("logs", inventory, {"edgelite_lines": int(lines)}, limit=host, out=sys.stderr)
    h = report["hosts"].get(host) or {}
    if "lines" not in h:
        raise FleetError(f"no log from {host}: {h.get('error') or 'not in the inventory'}", EXIT_FLEET)
    for line in h["lines"]:
        print(line, file=out)
    out.flush()
    return h["lines"]
