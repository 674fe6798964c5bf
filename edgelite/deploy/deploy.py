"""`edgelite deploy`: push a bundle to a device over SSH and run it as a service, or roll it back.

The seven steps (each printed as `[n/7]`), and why an interrupted deploy is harmless:

1. preflight  – probe the device (arch, OS, Python, disk, cameras, systemd); refuse clearly
2. package    – the edgelite wheel (+ with --offline the device's dependency wheels), all cached
3. push       – agent (agent.pyz), wheels, bundle (into bundles/.incoming/<id>), verified by sha256 ON the device
4. install    – a venv keyed by its wheels (reused when unchanged), --system-site-packages
5. smoke test – one inference with the new bundle through `edgelite run`; nothing is switched yet
6. switch     – a detached device-side transaction: `current` symlink swapped atomically, restart
7. health     – /healthz must report frames; otherwise the device switches back and restarts

Steps 1-5 only add files next to the live release; step 6-7 run on the device by themselves, so
killing this process at any point leaves the previous release serving (or the new one, healthy).
Every device step is a call of the device agent (`edgelite.deploy.client.Agent`): one JSON request,
one JSON reply; a failure reply carries its exit code.

    >>> conn = Connection(parse_target("pi@raspberrypi.local"))
    >>> deploy(DeployOptions(bundle=Path("bundles/demo"), connection=conn, source="0"))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

from edgelite.deploy.client import Agent, failure
from edgelite.deploy.errors import (
    EXIT_CHECKSUM,
    EXIT_PREFLIGHT,
    EXIT_REMOTE,
    EXIT_SMOKE,
    EXIT_UNHEALTHY,
    EXIT_USAGE,
    DeployError,
)
from edgelite.deploy.preflight import PROBE, Facts, assess, parse_probe, report
from edgelite.device.sources.rtsp import redact_url
from edgelite.http_address import is_loopback, parse_http_address
from edgelite.remote.connection import Connection
from edgelite.remote.layout import FRAMES, unit_name
from edgelite.remote.ssh import Remote, Target, rq
from edgelite.whoami import whoami

STEPS = 7
DEFAULT_HTTP = "127.0.0.1:8080"


@dataclasses.dataclass(frozen=True)
class DeployOptions:
    """Every option of `edgelite deploy BUNDLE`; field names are the CLI flags with '-' -> '_'.

    `connection` holds the device and how to reach it (the SSH flags and --dir, and -v/--verbose).
    """

    bundle: Path
    connection: Connection
    source: str = "0"
    http: str = DEFAULT_HTTP
    format: str | None = None
    print_every: int = 30
    run_args: str = ""
    save_uncertain: bool = False  # the service keeps low-confidence frames in DIR/frames (for --pull-frames)
    offline: bool = False
    no_service: bool = False
    smoke_test: bool = True
    health_timeout: float = 90.0
    transfer: str = "auto"  # auto | rsync | scp
    wheel: str | None = None


class Steps:
    """`[n/7] name: detail` lines, flushed at once (a watcher — or a test — acts on them)."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.t0 = time.monotonic()
        self.n = 0

    def step(self, name: str, detail: str = "") -> None:
        self.n += 1
        self.say(f"[{self.n}/{STEPS}] {name}" + (f": {detail}" if detail else ""))

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


# ------------------------------------------------------------------------------------------- steps
def run_preflight(remote: Remote, directory: str) -> Facts:
    r = remote.run(f"sh -s -- {shlex.quote(directory)}", input=PROBE, timeout=120, check=False)
    facts = parse_probe(r.stdout)
    if not facts.complete:
        err = (r.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise DeployError(f"the preflight probe failed on {remote.target}: {err[0]}", EXIT_PREFLIGHT)
    return facts


def check_bundle(path: Path) -> tuple[str, dict]:
    """(bundle id, manifest) after verifying every model file on the workstation; refuses a corrupt bundle."""
    from edgelite.bundle import MANIFEST, Bundle, BundleError

    try:
        b = Bundle.load(path)
        b.verify()
    except BundleError as e:  # a ChecksumError keeps its exit code 4
        raise DeployError(f"refusing to deploy {path}: {e}", e.exit_code) from None
    if not b.available():
        raise DeployError(f"refusing to deploy {path}: it has no usable model", EXIT_USAGE)
    manifest_bytes = (path / MANIFEST).read_bytes()
    return hashlib.sha256(manifest_bytes).hexdigest()[:16], json.loads(manifest_bytes)


def deploy(opts: DeployOptions, out=None) -> dict:
    """Run the seven steps; returns the device's result (release id, health). Raises DeployError."""
    d = _Deployment(opts, Steps(out))
    with opts.connection.remote() as d.remote:
        d.preflight()
        d.package()
        d.push()
        d.install()
        d.smoke_test()
        return d.switch()


class _Deployment:
    """One deploy's state, filled in step by step (each method is one `[n/7]`)."""

    remote: Remote
    agent: Agent

    def __init__(self, opts: DeployOptions, steps: Steps):
        self.opts, self.steps = opts, steps
        self.bundle = Path(opts.bundle)
        self.bundle_id, self.manifest = check_bundle(self.bundle)  # before touching the device
        host, _ = parse_http_address(opts.http, error=DeployError)
        if not is_loopback(host) and "--token" not in opts.run_args:
            raise DeployError(f"--http {opts.http} serves the preview beyond the device itself; `edgelite run` "
                              "requires a token there: add --run-args '--token SECRET' (or keep the default "
                              "127.0.0.1 and watch it through ssh -L)", EXIT_USAGE)
        self.local_source = None  # a video file here, copied to the device's media/
        src = opts.source
        if not (src.isdigit() or "://" in src or src.startswith("picamera") or src == "heldout" or src.startswith("/dev/")):
            if Path(src).expanduser().is_file():
                self.local_source = Path(src).expanduser()
        self.source = src

    # 1 -------------------------------------------------------------------------------------------
    def preflight(self) -> None:
        opts = self.opts
        self.steps.step("preflight", str(opts.connection.target))
        self.facts = facts = run_preflight(self.remote, opts.connection.dir)
        assessment = assess(facts, source="file" if self.local_source else opts.source, offline=opts.offline)
        self.steps.say(report(facts, str(opts.connection.target), assessment))
        if assessment.problems:
            raise DeployError(f"{opts.connection.target} cannot run edgelite: {'; '.join(assessment.problems)}", EXIT_PREFLIGHT)
        self.root = facts.get("dir")
        self.agent = Agent(self.remote, self.root)
        self.transfer = opts.transfer
        if self.transfer == "auto":
            self.transfer = "rsync" if facts.yes("rsync") and self.remote.has_rsync_locally() else "scp"

    # 2 -------------------------------------------------------------------------------------------
    def package(self) -> None:
        from edgelite.deploy import package, sysnumpy

        opts, facts = self.opts, self.facts
        self.steps.step("package", "edgelite wheel" + (" + the device's wheels (--offline)" if opts.offline else ""))
        self.wheel = package.build_wheel(opts.wheel)
        self.constraints = package.constraints_file()
        cons = sysnumpy.device_constraints(self.constraints, facts.get("system_numpy"), package.cache_dir())
        keep_numpy = cons != self.constraints
        if keep_numpy:  # apt's numpy stays the venv's numpy (picamera2 & co. are built on it)
            self.constraints = cons
            self.steps.say(f"  keeping the device's system numpy {facts.get('system_numpy')} (apt's; the venv gets "
                           "no numpy of its own)")
        self.house = self.installer = None
        self.wheels: list[str] | None = None
        deps: list[Path] = []
        if opts.offline:
            self.house = package.wheelhouse(facts.platform_tag(), facts.python_tag(), constraints=self.constraints,
                                            log=self.steps.say)
            deps = sorted(self.house.glob("*.whl"))
            self.wheels = package.install_list(self.house, keep_numpy)
            self.installer = package.installer_wheel(facts.platform_tag(), self.constraints, log=self.steps.say)
        # the device venv is keyed by everything installed into it: a new wheel set, a new venv
        self.env_id = package.venv_id(self.wheel, deps + ([self.installer] if self.installer else []), self.constraints,
                                      facts.arch, facts.python_tag(), opts.offline)
        self.wheel_dir = f"{self.root}/wheels/edgelite/{package.files_digest([self.wheel])}"
        self.deps_dir = f"{self.root}/wheels/deps/{self.house.name}" if self.house else None
        self.tools_dir = f"{self.root}/wheels/tools" if self.installer else None
        self.cons_remote = (f"{self.root}/wheels/constraints-{package.files_digest([self.constraints])}.txt"
                            if self.constraints else None)
        mb = sum(p.stat().st_size for p in deps) / 1e6
        self.steps.say(f"  {self.wheel.name}" + (f" + {len(deps)} device wheels ({mb:.0f} MB, {facts.platform_tag()}, "
                                                  f"cp{facts.python_tag().replace('.', '')})" if opts.offline else ""))

    # 3 -------------------------------------------------------------------------------------------
    def push(self) -> None:
        from edgelite.deploy.package import build_agent, files_digest

        remote, root, transfer, bid = self.remote, self.root, self.transfer, self.bundle_id
        self.steps.step("push", f"bundle {bid}, wheels and agent to {root} ({transfer})")
        dirs = [root, f"{root}/bundles/.incoming", self.wheel_dir, f"{root}/media", f"{root}/releases", f"{root}/run"]
        extra = [d for d in (self.deps_dir, self.tools_dir) if d]
        remote.run("mkdir -p " + " ".join(shlex.quote(d) for d in dirs + extra))
        remote.push([build_agent()], root, transfer=transfer)  # agent.pyz, the device side
        state = self.agent.call("prepare-bundle", bundle=bid)
        if state.get("damaged"):
            self.steps.say(f"  the device's copy of bundle {bid} was damaged ({'; '.join(state['damaged'])}); re-sending")
        if not state.get("present"):
            remote.push([self.bundle], f"{root}/bundles/.incoming/{bid}", transfer=transfer, checksum=True,
                        delete=True, contents=True)
            r = self.agent.call("accept-bundle", check=False, bundle=bid)
            if r.get("exit_code") == EXIT_CHECKSUM:
                raise DeployError(f"the bundle failed its sha256 check on the device ({'; '.join(r.get('problems', []))}); "
                                  "nothing was switched", EXIT_CHECKSUM)
            if not r["ok"]:
                raise failure(r, "accepting the bundle failed on the device")
        remote.push([self.wheel], self.wheel_dir, transfer=transfer)
        if self.deps_dir:
            remote.push([self.house], self.deps_dir, transfer=transfer, contents=True)
        if self.tools_dir:
            remote.push([self.installer], self.tools_dir, transfer=transfer)
        if self.cons_remote:
            remote.push([self.constraints], f"{root}/wheels", transfer=transfer)
            remote.run(f"mv -f {shlex.quote(f'{root}/wheels/{self.constraints.name}')} {shlex.quote(self.cons_remote)}")
        if self.local_source:
            self.source = f"{root}/media/{files_digest([self.local_source])[:8]}-{self.local_source.name}"
            remote.push([self.local_source], f"{root}/media", transfer=transfer)
            remote.run(f"mv -f {shlex.quote(f'{root}/media/{self.local_source.name}')} {shlex.quote(self.source)}")
        n_files = len([p for p in self.bundle.rglob("*") if p.is_file()])
        self.steps.say(f"  bundle {bid} ({n_files} files) {'was already on the device' if state.get('present') else 'sent'}"
                       "; sha256 of every file verified on the device")

    # 4 -------------------------------------------------------------------------------------------
    def install(self) -> None:
        opts = self.opts
        self.steps.step("install", f"venv {self.env_id} (--system-site-packages)")
        venv, lines = self.agent.run_detached(
            "venv", env=self.env_id, wheel=f"{self.wheel_dir}/{self.wheel.name}", offline=bool(self.deps_dir),
            find_links=self.deps_dir, constraints=self.cons_remote, wheels=self.wheels,
            installer=f"{self.tools_dir}/{self.installer.name}" if self.installer else None, timeout=3600,
            on_line=(lambda ln: self.steps.say("  " + ln)) if opts.connection.verbose else None)
        if not venv["ok"]:
            text = "\n".join(lines)
            hint = ""
            if not opts.offline and any(w in text for w in ("SSLError", "Could not fetch URL", "Failed to establish",
                                                              "Temporary failure in name resolution",
                                                              "No matching distribution")):
                hint = ("; the device could not download from its package index: --offline brings every wheel "
                        "from this machine instead")
            detail = " / ".join([*lines[-2:], str(venv.get("error"))])
            raise DeployError(f"installing edgelite on the device failed: {detail}{hint}",
                              int(venv.get("exit_code") or EXIT_REMOTE))
        how = "offline" if opts.offline else "from the index"
        detail = (f"venv {self.env_id} reused" if venv.get("reused")
                  else f"venv {self.env_id} created in {venv.get('seconds')} s ({how}, {venv.get('installer', 'pip')})")
        vers = venv.get("versions") or {}
        self.steps.say("  " + detail + (": " + ", ".join(f"{k} {v}" for k, v in vers.items()) if vers else ""))

    # 5 -------------------------------------------------------------------------------------------
    def smoke_test(self) -> None:
        if not self.opts.smoke_test:
            self.steps.step("smoke test", "skipped (--no-smoke-test)")
            return
        self.steps.step("smoke test", "one inference with the new bundle on the device")
        smoke = self.agent.call("smoke", check=False, ssh_timeout=900, env=self.env_id, bundle=self.bundle_id,
                                format=self.opts.format)
        if not smoke["ok"]:
            raise DeployError(f"smoke test failed on the device: {smoke.get('error')}; nothing was switched, "
                              "the previous release keeps serving", EXIT_SMOKE)
        self.steps.say(f"  {smoke.get('label')} {smoke.get('score') or 0:.2f}, {smoke.get('inference_ms') or 0:.1f} ms "
                       f"inference ({smoke.get('seconds')} s with start-up)")

    # 6 + 7 ---------------------------------------------------------------------------------------
    def switch(self) -> dict:
        opts, root = self.opts, self.root
        mode, user = self.facts.service_mode, self.facts.get("user")
        unit = unit_name(opts.connection.dir, root)
        if not opts.no_service:
            self.agent.call("configure", mode=mode, unit=unit, user=user)
        meta = {"models": [e.get("name") for e in self.manifest.get("models", []) if e.get("status", "ok") == "ok"],
                "deployed_by": whoami(), "bundle_path": str(self.bundle.resolve()), "wheel": self.wheel.name}
        run_args = opts.run_args + (f" --save-uncertain {shlex.quote(f'{root}/{FRAMES}')}" if opts.save_uncertain else "")
        rid = self.agent.call("release", bundle=self.bundle_id, env=self.env_id, source=self.source, http=opts.http,
                              print_every=int(opts.print_every), run_args=run_args, meta=meta,
                              source_is_file=bool(self.local_source), format=opts.format)["release"]
        self.steps.step("switch", f"current -> releases/{rid}, " + ("service not managed (--no-service)" if opts.no_service
                                                                   else f"restarting the {mode} service ({unit})"))
        result = commit(self.agent, rid, opts.health_timeout, self.steps, no_service=opts.no_service)
        result["elapsed_s"] = round(self.steps.elapsed(), 1)
        port = opts.http.rsplit(":", 1)[-1]
        self.steps.say(f"deployed {rid} to {opts.connection.target} in {self.steps.elapsed():.0f} s" +
                       ("" if opts.no_service else f"; preview on the device at http://{opts.http}/ "
                        f"(ssh -L {port}:{opts.http} {opts.connection.target.destination})"))
        return result


def commit(agent: Agent, rid: str, health_timeout: float, steps: Steps, *, no_service: bool = False,
           label: str = "health") -> dict:
    """Start the device-side switch/restart/health/rollback transaction (detached) and follow it to its end."""
    result, _ = agent.run_detached("commit", release=rid, health_timeout=health_timeout, no_service=no_service,
                                   timeout=2 * health_timeout + 300, on_line=lambda ln: steps.say("  " + ln))
    unit = result.get("unit") or {}
    if unit.get("verified"):
        steps.say(f"  systemd-analyze verify: {unit.get('findings') or 'the unit is clean'}")
    if result.get("ok"):
        h = result.get("health") or {}
        steps.step(label, ("not checked (--no-service)" if no_service else
                           f"{result.get('why')}: {h.get('frames')} frames, {h.get('fps')} fps, model {h.get('model')}"))
        return result
    for ln in result.get("log_tail") or []:
        steps.say("  | " + ln)
    back = result.get("rolled_back_to")
    if back:
        again = "and it is healthy again" if result.get("previous_healthy") else "BUT IT IS NOT HEALTHY EITHER"
        msg = f"release {rid} was not healthy ({result.get('why')}); switched back to {back} {again}"
    elif "rolled_back_to" in result:
        msg = f"release {rid} was not healthy ({result.get('why')}); nothing to go back to, the service is stopped"
    else:
        msg = f"switching to {rid} failed: {result.get('why') or result.get('error')}"
    raise DeployError(msg, EXIT_UNHEALTHY)


# --------------------------------------------------------------------------- status, logs, rollback
def device_status(conn: Connection) -> dict:
    with conn.remote() as remote:
        return Agent(remote, conn.dir).call("status")


def format_status(st: dict, target: Target) -> str:
    lines = [f"edgelite on {target} ({st.get('dir')})"]
    svc, state = st.get("service") or {}, st.get("state") or {}
    run = state.get("state") or ("running" if state.get("active") else "stopped")
    pid = f", pid {state['pid']}" if state.get("pid") and state.get("active") else ""
    lines.append(f"  service   {svc.get('mode')} {svc.get('unit', '')}: {run}{pid}, {state.get('restarts', 0)} restarts")
    cur = st.get("current")
    if cur:
        lines.append(f"  current   {cur.get('id')}: bundle {cur.get('bundle')}, source {redact_url(str(cur.get('source')))}, "
                     f"http {cur.get('http')}" + (f", format {cur['format']}" if cur.get("format") else ""))
    else:
        lines.append("  current   nothing")
    h = st.get("health") or {}
    body = h.get("body")
    if isinstance(body, dict):
        lines.append(f"  health    HTTP {h.get('http')} {body.get('status')}: {body.get('frames')} frames, "
                     f"{body.get('fps')} fps, model {body.get('model')}, last result {body.get('last_result_age_s')} s ago")
    elif h:
        lines.append(f"  health    {body}")
    rels = st.get("releases") or []
    lines.append("  releases  " + (", ".join(r["id"] + (" (current)" if r.get("current") else "") for r in rels) or "none"))
    if st.get("failed"):
        lines.append("  failed    " + ", ".join(st["failed"]))
    return "\n".join(lines)


def device_logs(conn: Connection, lines: int = 50, follow: bool = False, out=None) -> int:
    out = out or sys.stdout
    with conn.remote() as remote:
        agent = Agent(remote, conn.dir)
        if follow:
            return agent.stream("logs", lambda ln: print(ln, file=out, flush=True), lines=int(lines), follow=True)
        for line in agent.call("logs", lines=int(lines))["lines"]:
            print(line, file=out)
        out.flush()
        return 0


def rollback(conn: Connection, health_timeout: float = 90.0, out=None) -> dict:
    """Go back one release (the newest good release older than the current one), health-checked."""
    steps = Steps(out)
    with conn.remote() as remote:
        agent = Agent(remote, conn.dir)
        info = agent.call("previous")
        if not info.get("previous"):
            raise DeployError(f"nothing to roll back to on {conn.target}: {info.get('current') or 'no release'} "
                              "is the oldest release kept", EXIT_USAGE)
        steps.n = 5
        steps.step("switch", f"rollback: current -> releases/{info['previous']} (from {info.get('current')})")
        result = commit(agent, info["previous"], health_timeout, steps)
        steps.say(f"rolled back {conn.target} to {info['previous']}")
        return result


def pull_frames(conn: Connection, dest: str | Path, transfer: str = "auto", out=None) -> list[str]:
    """Move the frames the device's service kept (`deploy --save-uncertain`: DIR/frames) into `dest`: each
    file is removed there once it is here, so the device's capped folder has room again."""
    with conn.remote() as remote:
        r = remote.run(f"cd {rq(conn.dir)}/{FRAMES} && pwd", check=False)
        if r.returncode != 0:
            raise DeployError(f"{conn.target} has no {conn.dir}/{FRAMES}: deploy with --save-uncertain first "
                              "(the service then keeps its low-confidence frames there)", EXIT_USAGE)
        if transfer == "auto":
            has = remote.run("command -v rsync", check=False).returncode == 0
            transfer = "rsync" if has and remote.has_rsync_locally() else "scp"
        names = remote.pull(r.stdout.strip(), dest, transfer=transfer, remove_source=True)
    print(f"pulled {len(names)} frames from {conn.target} into {dest}", file=out or sys.stdout, flush=True)
    return names


def uninstall(conn: Connection, out=None) -> None:
    with conn.remote() as remote:
        r = Agent(remote, conn.dir).call("uninstall", check=False)
        if not r["ok"]:
            raise failure(r, f"uninstall on {conn.target}")
        print(f"removed {r.get('removed')} and its service from {conn.target}", file=out or sys.stdout, flush=True)
