"""The rollout plan, made ONCE on the controller: the bundle checked, the agent/wheel/wheelhouse built, and
for every host what its deploy will do (paths on the device, venv id, release key), or why it is refused.

The role's preflight play runs the device probe on every host (`edgelite.deploy.preflight.PROBE`), then
one `run_once` task on localhost pipes all probes and per-host settings into
``python -m edgelite.fleet.plan`` and registers its JSON reply for every host; the rollout play only
reads it. The names and ids are the ones `edgelite deploy` uses (same venv id, wheel and bundle
folders), so a device deployed by either reuses what the other pushed.

    $ python -m edgelite.fleet.plan probe              # the preflight probe (a POSIX sh script)
    $ python -m edgelite.fleet.plan < request.json     # {"bundle", "offline", "wheel", "hosts": {name: {...}}}
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from edgelite.deploy.agent.layout import AGENT_FILE
from edgelite.deploy.deploy import check_bundle
from edgelite.deploy.preflight import PROBE, assess, parse_probe
from edgelite.errors import EXIT_FAILED, EdgeliteError
from edgelite.fleet.errors import EXIT_USAGE, FleetError
from edgelite.remote.layout import BUNDLES, DEFAULT_DIR, INCOMING, MEDIA, WHEELS, unit_name
from edgelite.whoami import whoami

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_local_file(source: str) -> bool:
    """A --source that names a file on the controller (copied to the device's media/ and looped)."""
    s = str(source)
    if s.isdigit() or "://" in s or s in ("picamera2", "heldout") or s.startswith("/dev/"):
        return False
    return Path(s).expanduser().is_file()


def settings_problems(http: str, has_token: bool) -> list[str]:
    """A preview beyond the device's loopback needs a token (`edgelite run` refuses to start without one)."""
    host = http.rsplit(":", 1)[0].strip("[]") if ":" in http else "127.0.0.1"
    if host not in LOOPBACK and not has_token:
        return [f"edgelite_http={http} serves the preview beyond the device: set edgelite_token for this host "
                "(ansible-vault, or \"{{ lookup('env', 'EDGELITE_TOKEN') }}\") or keep 127.0.0.1"]
    return []


def release_key(fields: dict, token_sha256: str) -> str:
    """What makes a release: a host whose current release has this key (and is healthy) is left alone.
    The token itself never reaches the plan: the role hashes it (a new token is a new release)."""
    blob = json.dumps({**fields, "token": token_sha256 or None}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Shared:
    """What every host shares: the bundle, the agent, the wheel, the constraints, the wheelhouses."""

    def __init__(self, bundle: str, offline: bool, wheel: str | None):
        from edgelite.deploy import package

        self.package = package
        self.bundle = Path(bundle).expanduser().resolve()
        if not self.bundle.is_dir():
            raise FleetError(f"bundle {bundle}: no such directory (pass -e bundle=PATH to a converted bundle)",
                             EXIT_USAGE)
        self.bundle_id, self.manifest = check_bundle(self.bundle)
        self.offline = offline
        self.agent = package.build_agent()
        self.wheel = package.build_wheel(wheel or None)
        self.constraints = package.constraints_file()
        self.houses: dict[tuple[str, str, Path | None], Path] = {}
        self.version = self.wheel.name.split("-")[1]
        models = [e for e in self.manifest.get("models", []) if e.get("status", "ok") == "ok"]
        self.meta = {"models": [e.get("name") for e in models],
                     "sha256": {e.get("name"): (e.get("sha256") or "")[:12] for e in models},
                     "edgelite": self.version, "bundle_path": str(self.bundle), "wheel": self.wheel.name,
                     "deployed_by": whoami(), "by": "edgelite fleet"}

    def house(self, platform: str, python: str, constraints: Path | None) -> Path:
        if (platform, python, constraints) not in self.houses:
            self.houses[platform, python, constraints] = self.package.wheelhouse(
                platform, python, constraints=constraints, log=lambda m: print(m, file=sys.stderr))
        return self.houses[platform, python, constraints]


def host_plan(shared: Shared, name: str, host: dict) -> dict:
    """One host's deploy: device paths, venv, release fields and key — or its problems (then nothing else)."""
    pkg = shared.package
    facts = parse_probe(host.get("probe") or "")
    source, http = str(host.get("source") or "0"), str(host.get("http") or "127.0.0.1:8080")
    token = str(host.get("token_sha256") or "")
    local = is_local_file(source)
    assessment = assess(facts, source="file" if local else source, offline=shared.offline)
    problems = assessment.problems + settings_problems(http, bool(token))
    out = {"host": name, "problems": problems, "warnings": assessment.warnings,
           "before": facts.get("current") or None}
    if problems:
        return out
    root = facts.get("dir")
    from edgelite.deploy import sysnumpy

    # as edgelite deploy: apt's numpy 1.x stays the venv's numpy (picamera2 & co. are built on it)
    cons = sysnumpy.device_constraints(shared.constraints, facts.get("system_numpy"), pkg.cache_dir())
    deps: list[Path] = []
    house = None
    if shared.offline:
        house = shared.house(facts.platform_tag(), facts.python_tag(), cons)
        deps = sorted(house.glob("*.whl"))
    env = pkg.venv_id(shared.wheel, deps, cons, facts.arch, facts.python_tag(), shared.offline)
    wheel_dir = f"{root}/{WHEELS}/edgelite/{pkg.files_digest([shared.wheel])}"
    media = None
    if local:
        path = Path(source).expanduser().resolve()
        media = {"src": str(path), "dest": f"{root}/{MEDIA}/{pkg.files_digest([path])[:8]}-{path.name}"}
        source = media["dest"]
    run_args = [str(a) for a in host.get("run_args") or []]
    if int(host.get("threads") or 0) > 0:
        run_args += ["--num-threads", str(int(host["threads"]))]
    release = {"bundle": shared.bundle_id, "env": env, "source": source, "http": http,
               "format": host.get("format") or None, "print_every": int(host.get("print_every") or 30),
               "run_args": run_args, "source_is_file": local}
    key = release_key(release, token)
    out.update({
        "root": root, "agent": f"{root}/{AGENT_FILE}", "user": facts.get("user"), "mode": facts.service_mode,
        "unit": unit_name(str(host.get("dir") or DEFAULT_DIR), root), "key": key,
        "dirs": [root, f"{root}/{BUNDLES}/{INCOMING}", wheel_dir, f"{root}/{MEDIA}", f"{root}/releases",
                 f"{root}/run"] + ([f"{root}/{WHEELS}/deps/{house.name}"] if house else []),
        "bundle_incoming": f"{root}/{BUNDLES}/{INCOMING}/{shared.bundle_id}",
        "wheel": {"src": str(shared.wheel), "dest": f"{wheel_dir}/{shared.wheel.name}"},
        "deps": {"src": f"{house}/", "dest": f"{root}/{WHEELS}/deps/{house.name}"} if house else None,
        "constraints": ({"src": str(cons),
                         "dest": f"{root}/{WHEELS}/constraints-{pkg.files_digest([cons])}.txt"} if cons else None),
        "media": media, "release": {**release, "meta": {**shared.meta, "fleet_key": key}},
    })
    return out


def make_plan(request: dict) -> dict:
    """The plan for every host of `request` (see the module docstring)."""
    shared = Shared(str(request.get("bundle") or ""), bool(request.get("offline")), request.get("wheel"))
    hosts = request.get("hosts") or {}
    return {"bundle": {"id": shared.bundle_id, "path": str(shared.bundle), "models": shared.meta["models"],
                       "edgelite": shared.version},
            "agent": str(shared.agent),
            "hosts": {name: host_plan(shared, name, h or {}) for name, h in sorted(hosts.items())}}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["probe"]:
        sys.stdout.write(PROBE)
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
