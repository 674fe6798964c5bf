"""The rollout plan, made ONCE on the controller: the bundle checked, the agent/wheel/wheelhouse built, and
for every host `edgelite deploy`'s own plan (`edgelite.deploy.plan`: paths on the device, files to copy,
the release and its key, every agent request), or why it is refused.

The role's preflight play pushes the agent (``python -m edgelite.fleet.plan layout --agent`` builds it
and names the device folder, unless `edgelite fleet` passed that layout in) and asks it for the device's
facts on every host, then
one `run_once` task on localhost pipes all probes and per-host settings into
``python -m edgelite.fleet.plan`` and registers its JSON reply for every host; the rollout play only
reads it: its tasks push the files the plan names (the bundle as one tar, `bundle_archive`; the venv's wheels
as another, `wheels_archive`) and send the
agent requests it holds, batched (the agent's `batch`: one call before the push, one detached after). The plan is the
one `edgelite deploy` executes, so a device deployed by either reuses what the other pushed.

    $ python -m edgelite.fleet.plan layout [--agent]   # {"dir", "agent", "agent_src", "agent_sha256"}
    $ python -m edgelite.fleet.plan < request.json     # {"bundle", "offline", "wheel", "hosts": {name: {...}}}
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from pathlib import Path

from edgelite.deploy import plan as planning
from edgelite.deploy import space
from edgelite.deploy.artifacts import Builder, checked_bundle
from edgelite.deploy.preflight import Facts, assess
from edgelite.errors import EXIT_FAILED, EdgeliteError
from edgelite.fleet.errors import EXIT_USAGE, FleetError


class Shared:
    """What every host shares: the bundle, and the files built once (the agent, the wheel, wheelhouses)."""

    def __init__(self, bundle: str, offline: bool, wheel: str | None, checked: str | None = None):
        path = Path(bundle).expanduser().resolve()
        if not bundle or not path.is_dir():
            raise FleetError(f"bundle {bundle}: no such directory (pass -e bundle=PATH to a converted bundle)",
                             EXIT_USAGE)
        # `edgelite fleet deploy` verified every file before Ansible started (checked = that bundle's id):
        # then the manifest is read, not verified again
        self.bundle = checked_bundle(path, verify=False)
        if self.bundle.id != checked:
            self.bundle = checked_bundle(path)
        self.builder = Builder(offline, wheel or None, log=lambda m: print(m, file=sys.stderr))
        self.archive = bundle_archive(self.bundle)


def bundle_archive(bundle: planning.BundleInfo) -> Path:
    """The bundle folder as ONE tar file, which the role pushes and unpacks into the folder the agent then
    verifies (`accept-bundle`) as it verifies a copied one: a few SSH round trips instead of a few per file.
    Written again on every rollout (the folder may have changed under the same manifest), atomically."""
    from edgelite.remote.agent import cache_dir

    out = cache_dir() / "fleet" / f"bundle-{bundle.id}.tar"
    # a symlink goes as the file it names, as a folder copy sends it
    return _tar(out, [(p, str(p.relative_to(bundle.path))) for p in sorted(bundle.path.rglob("*")) if p.is_file()])


def _tar(out: Path, members: list[tuple[Path, str]]) -> Path:
    """`members` (local file, name in the archive) as one tar at `out`, written atomically: plain 0644 files,
    owned by nobody in particular (the device's user owns what it unpacks)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path, arcname in members:
            info = tar.gettarinfo(str(path.resolve()), arcname=arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, out)
    return out


def wheels_archive(plan: dict) -> dict | None:
    """What a host's venv is built from (the edgelite wheel, the constraints, the installer, --offline's
    wheelhouse) as ONE tar, unpacked into the device's wheel folder: one push instead of a stat, a transfer
    and a module per file (on the emulated Pi the per-file copy of a fresh device's wheels took 86 s of a
    163 s rollout). Named by what it holds, so hosts with the same wheels share one file, built once."""
    import hashlib

    from edgelite.remote.agent import cache_dir
    from edgelite.remote.layout import WHEELS

    base = f"{plan['root']}/{WHEELS}"
    members = [(Path(plan[k]["src"]), os.path.relpath(plan[k]["dest"], base))
               for k in ("wheel", "constraints", "installer") if plan.get(k)]
    if plan.get("deps"):
        house, dest = Path(plan["deps"]["src"]), os.path.relpath(plan["deps"]["dest"], base)
        members += [(p, f"{dest}/{p.relative_to(house)}") for p in sorted(house.rglob("*")) if p.is_file()]
    if not members:
        return None
    if any(a.startswith("..") for _, a in members):  # the plan put a file outside the wheel folder
        raise FleetError(f"the plan's wheel files are not all under {base}: {[a for _, a in members]}", EXIT_FAILED)
    what = json.dumps([(a, p.stat().st_size, p.stat().st_mtime_ns) for p, a in members])
    out = cache_dir() / "fleet" / f"wheels-{hashlib.sha256(what.encode()).hexdigest()[:16]}.tar"
    return {"archive": str(out if out.exists() else _tar(out, members)), "dest": base}


def settings(host: dict) -> planning.Settings:
    """A host's settings from its inventory values (an empty value is the plan's default)."""
    defaults = planning.Settings()
    return planning.Settings(
        dir=str(host.get("dir") or defaults.dir), source=str(host.get("source") or defaults.source),
        http=str(host.get("http") or defaults.http), format=host.get("format") or None,
        print_every=int(host.get("print_every") or defaults.print_every),
        run_args=tuple(str(a) for a in host.get("run_args") or ()), threads=int(host.get("threads") or 0),
        token_sha256=str(host.get("token_sha256") or ""), allowed_signers=str(host.get("allowed_signers") or ""),
        health_timeout=float(host.get("health_timeout") or defaults.health_timeout),
        keep=int(host.get("keep") or defaults.keep))


def trust_problems(bundle: Path, allowed_signers: str) -> list[str]:
    """Why a host's trust list (edgelite_allowed_signers) is refused, or would refuse the bundle itself."""
    from edgelite.signature import check_allowed_signers, verify_with

    try:
        check_allowed_signers(allowed_signers, "edgelite_allowed_signers")
        verify_with(bundle, allowed_signers)
    except EdgeliteError as e:
        return [f"edgelite_allowed_signers: {e}"]
    return []


def host_plan(shared: Shared, name: str, host: dict) -> dict:
    """One host's plan (`edgelite.deploy.plan.make_plan`), or its problems (then nothing else)."""
    facts = Facts({str(k): str(v) for k, v in (host.get("facts") or {}).items()})
    s = settings(host)
    local = planning.local_file(s.source)
    assessment = assess(facts, source="file" if local else s.source, offline=shared.builder.offline)
    problems = list(assessment.problems)
    if planning.needs_token(s.http) and not s.token_sha256:
        problems.append(f"edgelite_http={s.http} serves the preview beyond the device: set edgelite_token for "
                        "this host (ansible-vault, or \"{{ lookup('env', 'EDGELITE_TOKEN') }}\") or keep 127.0.0.1")
    if s.keep < 1:
        problems.append(f"edgelite_keep={s.keep}: at least 1 release stays on the host (2 or more leave one to roll back to)")
    if s.allowed_signers:
        problems += trust_problems(shared.bundle.path, s.allowed_signers)
    out = {"host": name, "problems": problems, "warnings": assessment.warnings, "before": facts.get("current") or None}
    if problems:
        return out
    art = shared.builder.for_device(facts, planning.extras_for(s))
    if refusal := space.problem(facts, space.needed(facts, shared.bundle, art, local), shared.builder.offline):
        return {**out, "problems": [refusal]}
    plan = planning.make_plan(facts, s, shared.bundle, art)
    plan["bundle"]["archive"] = str(shared.archive)  # what the role pushes (`edgelite deploy` sends the folder)
    plan["wheels_archive"] = wheels_archive(plan)  # the same for the venv's files
    return {**out, **plan}


def make_plan(request: dict) -> dict:
    """The plan for every host of `request` (see the module docstring)."""
    shared = Shared(str(request.get("bundle") or ""), bool(request.get("offline")), request.get("wheel"),
                    request.get("bundle_checked"))
    hosts = request.get("hosts") or {}
    return {"bundle": {"id": shared.bundle.id, "path": str(shared.bundle.path)},
            "hosts": {name: host_plan(shared, name, h or {}) for name, h in sorted(hosts.items())}}


def layout(build: bool = False) -> dict:
    """What the role needs before any plan (status, logs, rollback too): the device folder's default and the
    agent's file name (`edgelite.remote.layout`, never YAML); with `build`, the agent zipapp to push first (a
    file of that name: the role copies it into the folder) and its sha256 (a device that has it already is
    not sent it again). `edgelite fleet` passes it to the playbook."""
    import hashlib

    from edgelite.remote.agent import build_agent
    from edgelite.remote.layout import AGENT, DEFAULT_DIR

    src = build_agent() if build else None
    return {"dir": DEFAULT_DIR, "agent": AGENT, "agent_src": str(src) if src else None,
            "agent_sha256": hashlib.sha256(src.read_bytes()).hexdigest() if src else None}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["layout"]:
        print(json.dumps(layout(build=argv[1:] == ["--agent"])))
        return 0
    try:
        reply = {"ok": True, **make_plan(json.loads(sys.stdin.read() or "{}"))}
    except EdgeliteError as e:
        reply = {"ok": False, "error": str(e), "exit_code": e.exit_code}
    except ValueError as e:
        reply = {"ok": False, "error": f"the plan request is not JSON ({e})", "exit_code": EXIT_USAGE}
    print(json.dumps(reply))
    return 0 if reply["ok"] else int(reply.get("exit_code") or EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
