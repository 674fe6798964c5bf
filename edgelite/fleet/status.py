"""`edgelite fleet status|logs`: one row per host from the device agent's `status` reply, and a host's log.

    >>> row_from("pi1", {"deployed": True, "status": {"current": {"id": "r1", "meta": {"edgelite": "0.4.0",
    ...     "sha256": {"int8": "ab12cd34ef56"}}}, "state": {"state": "running", "active": True},
    ...     "health": {"http": 200, "body": {"status": "ok", "fps": 9.5, "model": "int8"}}}})["model"]
    'int8 ab12cd34'
"""

from __future__ import annotations

import json
import sys

from edgelite.deploy.client import read_status
from edgelite.fleet.errors import EXIT_FLEET, EXIT_USAGE, FleetError
from edgelite.fleet.runner import run_playbook
from edgelite.remote.ssh import explain_ssh_failure

COLUMNS = ("host", "reachable", "release", "model", "service", "health", "fps", "edgelite", "pick")


def row_from(name: str, h: dict) -> dict:
    """A host's status row from its report (`edgelite_report` of the status tasks, or unreachable)."""
    row = dict.fromkeys(COLUMNS)
    row.update(host=name, reachable=not h.get("unreachable"),
               error=explain_ssh_failure(name, str(h.get("error") or "")) if h.get("unreachable") else h.get("error"))
    st = h.get("status") if h.get("deployed") else None
    if not row["reachable"] or st is None:
        row["service"] = "unreachable" if not row["reachable"] else "nothing deployed"
        return row
    r = read_status(st)
    health = (f"{r['health_http']} {r['health_status']}" if r["health_status"] is not None else r["health"])
    row.update(release=r["release"], model=" ".join(filter(None, (r["model"], r["model_sha256"]))) or None,
               service=r["service"], health=health, fps=r["fps"], edgelite=r["edgelite"], failed=r["failed"],
               pick=r["pick"])
    return row


def status(inventory, limit: str | None = None, forks: int = 5, out=None, as_json: bool = False, *,
           strict_host_key: bool = False, known_hosts: str | None = None) -> list[dict]:
    """Every host's row; prints the table (or JSON). Unreachable hosts are rows too (exit 9 after the table)."""
    out = out or sys.stdout
    _, report = run_playbook("status", inventory, {}, limit=limit, forks=forks, strict_host_key=strict_host_key,
                             known_hosts=known_hosts, out=sys.stderr if as_json else out)
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


def logs(inventory, host: str, lines: int = 50, out=None, *, strict_host_key: bool = False,
         known_hosts: str | None = None) -> list[str]:
    """The last `lines` lines of the service's log on `host` (one inventory host name)."""
    out = out or sys.stdout
    if not host or any(c in host for c in ",:!&*[]"):
        raise FleetError(f"edgelite fleet logs: name ONE inventory host, not a pattern ({host!r})", EXIT_USAGE)
    _, report = run_playbook("logs", inventory, {"edgelite_lines": int(lines)}, limit=host, out=sys.stderr,
                             strict_host_key=strict_host_key, known_hosts=known_hosts)
    h = report["hosts"].get(host) or {}
    if "lines" not in h:
        raise FleetError(f"no log from {host}: {h.get('error') or 'not in the inventory'}", EXIT_FLEET)
    for line in h["lines"]:
        print(line, file=out)
    out.flush()
    return h["lines"]
