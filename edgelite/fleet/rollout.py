"""`edgelite fleet deploy|rollback`: a rollout with Ansible, and the summary of which host runs which release.

The rollout is the shipped playbook (`edgelite fleet playbook`): play 1 probes every host and plans
once on the controller (`edgelite.fleet.plan`); play 2 runs the `edgelite` role in batches - the
canary batch, then `--serial` batches - with Ansible's `serial` list and `max_fail_percentage`, so
past `--max-fail` no later batch starts; each host there is three agent calls (`batch`: before the push,
the detached transaction after it, its `wait`). Each host's result comes back through the role's facts.

    >>> serial_plan(FleetOptions(inventory=Path("hosts.ini"), canary=1, serial="2"))
    [1, 2]
    >>> serial_plan(FleetOptions(inventory=Path("hosts.ini"), canary=0, serial="25%"))
    ['25%']
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

from edgelite.errors import EdgeliteError
from edgelite.fleet.errors import EXIT_FLEET, EXIT_USAGE, FleetError
from edgelite.fleet.runner import run_playbook
from edgelite.remote.ssh import explain_ssh_failure

#: the results that mean "this host runs the release it should"
GOOD = ("deployed", "unchanged", "would deploy")
ROLLOUT_PLAY = "Edgelite rollout"


@dataclasses.dataclass(frozen=True)
class FleetOptions:
    """Every option of `edgelite fleet deploy|rollback`; field names are the CLI flags with '-' -> '_'.

    `source` ... `health_timeout` are defaults: a host's inventory value wins."""

    inventory: Path
    bundle: Path | None = None
    limit: str | None = None
    canary: int = 1
    serial: str = "100%"
    max_fail: str = "0%"
    forks: int = 5
    offline: bool = False
    dry_run: bool = False
    json: str | None = None
    source: str | None = None
    http: str | None = None
    format: str | None = None
    threads: int | None = None
    health_timeout: float | None = None
    dir: str | None = None
    wheel: str | None = None
    vault_password_file: str | None = None
    verbose: bool = False
    strict_host_key: bool = False
    known_hosts: str | None = None


def _batch(value: str, flag: str) -> int | str:
    v = str(value).strip()
    if re.fullmatch(r"\d+", v) and int(v) > 0:
        return int(v)
    if re.fullmatch(r"\d+(\.\d+)?%", v) and 0 < float(v[:-1]) <= 100:
        return v
    raise FleetError(f"{flag} {value}: expected a number of hosts (2) or a percentage of them (25%)", EXIT_USAGE)


def serial_plan(opts: FleetOptions) -> list[int | str]:
    """Ansible's `serial` list: the canary batch, then --serial batches until every host had its turn."""
    if opts.canary < 0:
        raise FleetError(f"--canary {opts.canary}: expected 0 (no canary) or more hosts", EXIT_USAGE)
    rest = _batch(opts.serial, "--serial")
    return ([opts.canary] if opts.canary else []) + [rest]


def max_fail_percent(value: str) -> int:
    v = str(value).strip().rstrip("%")
    if not re.fullmatch(r"\d+", v) or int(v) > 100:
        raise FleetError(f"--max-fail {value}: expected a percentage of a batch, 0% to 100%", EXIT_USAGE)
    return int(v)


def defaults(opts: FleetOptions) -> dict:
    """The role's edgelite_default_* variables from the flags that were given (inventory values win)."""
    names = {"source": opts.source, "http": opts.http, "format": opts.format, "threads": opts.threads,
             "health_timeout": opts.health_timeout, "dir": opts.dir}
    return {f"edgelite_default_{k}": v for k, v in names.items() if v not in (None, "")}


def deploy(opts: FleetOptions, out=None) -> dict:
    """Roll `opts.bundle` out; prints Ansible's progress and the summary; returns the summary (a dict).
    Raises FleetError(EXIT_FLEET) after the summary when some host did not get the release."""
    from edgelite.deploy.artifacts import checked_bundle

    if opts.bundle is None:
        raise FleetError("edgelite fleet deploy BUNDLE: name the bundle folder to roll out", EXIT_USAGE)
    bundle = Path(opts.bundle).expanduser().resolve()
    if not bundle.is_dir():
        raise FleetError(f"bundle {opts.bundle}: no such directory", EXIT_USAGE)
    try:
        bundle_id = checked_bundle(bundle).id  # before any host is touched; a checksum mismatch keeps exit 4
    except EdgeliteError as e:
        raise FleetError(str(e), e.exit_code) from None
    if opts.forks < 1:
        raise FleetError(f"--forks {opts.forks}: expected 1 or more parallel hosts", EXIT_USAGE)
    evars = {"bundle": str(bundle), "edgelite_bundle_checked": bundle_id, "edgelite_serial": serial_plan(opts),
             "edgelite_max_fail": max_fail_percent(opts.max_fail), "edgelite_offline": opts.offline,
             "edgelite_dry_run": opts.dry_run, **defaults(opts)}
    if opts.wheel:
        evars["edgelite_wheel"] = str(Path(opts.wheel).expanduser().resolve())
    rc, report = run_playbook("deploy", opts.inventory, evars, limit=opts.limit, forks=opts.forks,
                              vault_password_file=opts.vault_password_file, verbose=opts.verbose,
                              strict_host_key=opts.strict_host_key, known_hosts=opts.known_hosts,
                              out=_progress_stream(opts, out))
    summary = summarize(report, ROLLOUT_PLAY, bundle=bundle_id)
    return _finish(opts, summary, out, what="rollout")


def rollback(opts: FleetOptions, out=None) -> dict:
    """Every host (or --limit) back one release, health-checked on the device."""
    evars = {"edgelite_serial": _batch(opts.serial, "--serial"), **defaults(opts)}
    _, report = run_playbook("rollback", opts.inventory, evars, limit=opts.limit, forks=opts.forks,
                             vault_password_file=opts.vault_password_file, verbose=opts.verbose,
                             strict_host_key=opts.strict_host_key, known_hosts=opts.known_hosts,
                             out=_progress_stream(opts, out))
    return _finish(opts, summarize(report, "Edgelite rollback", good=("rolled back",)), out, what="rollback")


def _progress_stream(opts: FleetOptions, out):
    return sys.stderr if opts.json == "-" else (out or sys.stdout)


def _finish(opts: FleetOptions, summary: dict, out, what: str) -> dict:
    out = out or sys.stdout
    if opts.json == "-":
        print(json.dumps(summary, indent=1), file=out)
    else:
        print(format_summary(summary), file=out)
        if opts.json:
            Path(opts.json).write_text(json.dumps(summary, indent=1) + "\n")
    out.flush()
    if not summary["ok"]:
        bad = [r["host"] for r in summary["hosts"] if not r["good"]]
        raise FleetError(f"the {what} did not reach {len(bad)} of {len(summary['hosts'])} hosts "
                         f"({', '.join(bad)}); the summary above says which release each runs", EXIT_FLEET)
    return summary


def summarize(report: dict, play: str, *, bundle: str | None = None, good: tuple[str, ...] = GOOD) -> dict:
    """One row per host (host, result, release before -> after, seconds, error) and who runs what."""
    rows = []
    for name, h in sorted(report.get("hosts", {}).items()):
        if name == "localhost":
            continue
        result = h.get("result") or "failed"
        if h.get("unreachable"):
            result = "unreachable"
            h = {**h, "error": explain_ssh_failure(name, str(h.get("error") or ""))}
        elif result == "planned":  # preflight passed, but no batch of the rollout reached it
            result = "not started"
        before = h.get("before")
        after = h.get("after", before) if result not in ("unreachable", "not started", "refused") else before
        spans = h.get("spans") or {}
        start, end = next((s for p, s in spans.items() if p.startswith(play)), (None, None))
        rows.append({"host": name, "result": result, "good": result in good, "before": before, "after": after,
                     "seconds": round(end - start, 1) if start else 0.0, "started": start, "ended": end,
                     "error": None if result in good else h.get("error"),
                     "changed": (h.get("recap") or {}).get("changed", 0)})
    releases: dict[str, list[str]] = {}
    for r in rows:
        releases.setdefault(r["after"] or "nothing", []).append(r["host"])
    return {"ok": bool(rows) and all(r["good"] for r in rows), "bundle": bundle, "hosts": rows,
            "releases": releases, "seconds": report.get("seconds")}


def format_summary(summary: dict) -> str:
    rows = summary["hosts"]
    w = max([4] + [len(r["host"]) for r in rows])
    lines = ["", f"{'host':<{w}}  {'result':<12}  {'release before -> after':<64}  seconds"]
    for r in rows:
        rel = f"{r['before'] or '-'} -> {r['after'] or '-'}" if r["before"] != r["after"] else (r["after"] or "-")
        lines.append(f"{r['host']:<{w}}  {r['result']:<12}  {rel:<64}  {r['seconds']:>7.1f}")
    lines.append("")
    for rid, hosts in summary["releases"].items():
        lines.append(f"{rid}: {', '.join(hosts)}")
    for r in rows:
        if r["error"]:
            lines.append(f"{r['host']}: {r['result']}: {r['error']}")
    return "\n".join(lines)
