"""`edgelite deploy`: push a bundle to a device over SSH and run it as a service, or roll it back.

The seven steps (each printed as `[n/7]`), and why an interrupted deploy is harmless:

1. preflight  – push the agent (small, stdlib only) and ask it for the device's facts (arch, OS, Python, disk,
                cameras, systemd); refuse clearly
2. package    – the edgelite wheel (+ with --offline the device's dependency wheels), all cached
3. push       – what the plan (`edgelite.deploy.plan`) names: the bundle (verified by sha256 ON the device),
                the wheels, a --source clip
4. install    – a venv keyed by its wheels (reused when unchanged), --system-site-packages
5. smoke test – one inference with the new bundle through `edgelite run`; nothing is switched yet
6. switch     – a detached device-side transaction: `current` symlink swapped atomically, restart
7. health     – /healthz must report frames; otherwise the device switches back and restarts

Steps 1-5 only add files next to the live release; step 6-7 run on the device by themselves, so
killing this process at any point leaves the previous release serving (or the new one, healthy).
Every device step is a call of the device agent (`edgelite.remote.agent.Agent`): one JSON request,
one JSON reply; a failure reply carries its exit code.

    >>> from edgelite.remote.target import parse_target
    >>> conn = Connection(parse_target("pi@raspberrypi.local"))
    >>> deploy(DeployOptions(bundle=Path("bundles/demo"), connection=conn, source="0"))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path

from edgelite.deploy import plan as planning
from edgelite.deploy import space
from edgelite.deploy.agent import DEFAULT_HTTP, HEALTH_TIMEOUT, KEEP, PRINT_EVERY
from edgelite.deploy.artifacts import Builder, checked_bundle
from edgelite.deploy.client import failure, read_status
from edgelite.deploy.errors import (
    EXIT_CHECKSUM,
    EXIT_PREFLIGHT,
    EXIT_REMOTE,
    EXIT_SMOKE,
    EXIT_UNHEALTHY,
    EXIT_UNTRUSTED,
    EXIT_USAGE,
    DeployError,
)
from edgelite.deploy.preflight import Facts, assess, report
from edgelite.device.sources.rtsp import redact_url
from edgelite.device.token import MQTT_PASSWORD_ENV, read_secret, read_token
from edgelite.remote.agent import Agent, push_agent
from edgelite.remote.connection import Connection
from edgelite.remote.layout import CURRENT, FRAMES, RELEASES
from edgelite.remote.pulled import Caps
from edgelite.remote.ssh import Remote, Target
from edgelite.signature import SignatureError, trust_list, verify_with

STEPS = 7


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
    print_every: int = PRINT_EVERY
    run_args: str = ""
    save_uncertain: bool = False  # the service keeps low-confidence frames in DIR/frames (for --pull-frames)
    offline: bool = False
    no_service: bool = False
    smoke_test: bool = True
    health_timeout: float = HEALTH_TIMEOUT
    keep: int = KEEP  # releases kept on the device (gc after a healthy switch)
    transfer: str = "auto"  # auto | rsync | scp
    wheel: str | None = None
    trust: list[str] | None = None  # KEY.pub files: the device's trust list becomes these keys (+ --allowed-signers)
    allowed_signers: str | None = None  # an OpenSSH allowed-signers file: the device's trust list
    remove_trust: bool = False  # delete the device's trust list
    token_file: str | None = None  # the preview token's file (else $EDGELITE_TOKEN): never a command line
    mqtt_password_file: str | None = None  # with --run-args '--mqtt URL': the broker's password (else the env)

    def settings(self) -> planning.Settings:
        """The plan's settings (`edgelite fleet` makes the same from a host's inventory values)."""
        return planning.Settings(dir=self.connection.dir, source=self.source, http=self.http, format=self.format,
                                 print_every=int(self.print_every), run_args=tuple(shlex.split(self.run_args)),
                                 save_uncertain=self.save_uncertain, no_service=self.no_service,
                                 health_timeout=float(self.health_timeout), keep=int(self.keep),
                                 allowed_signers=trust_list(self.trust or (), self.allowed_signers),
                                 remove_trust=self.remove_trust)


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
    """Push the agent (small, standard library only) into `directory`, then ask it what the device is."""
    return Facts(push_agent(remote, directory).call("facts", ssh_timeout=120)["facts"])


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
    """One deploy's state, filled in step by step (each method is one `[n/7]`); what it does on the device
    is the plan's (`edgelite.deploy.plan`), the same `edgelite fleet` hands its Ansible role."""

    remote: Remote
    agent: Agent

    def __init__(self, opts: DeployOptions, steps: Steps):
        self.opts, self.steps = opts, steps
        self.settings = opts.settings()
        if self.settings.keep < 1:
            raise DeployError(f"--keep {self.settings.keep}: at least 1 release stays on the device (the current "
                              "one); 2 or more leave one to roll back to", EXIT_USAGE)
        self.bundle = checked_bundle(opts.bundle)  # before touching the device
        if opts.remove_trust and self.settings.allowed_signers:
            raise DeployError("--remove-trust deletes the device's trust list; --trust/--allowed-signers set it: "
                              "pass one or the other", EXIT_USAGE)
        if self.settings.allowed_signers:
            check_signed(self.bundle.path, self.settings.allowed_signers)
        self.token = read_token(opts.token_file, error=DeployError)
        if planning.needs_token(opts.http) and "--token" not in self.settings.run_args and not self.token:
            raise DeployError(f"--http {opts.http} serves the preview beyond the device itself; `edgelite run` "
                              "requires a token there: set $EDGELITE_TOKEN or pass --token-file FILE (or keep the "
                              "default 127.0.0.1 and watch it through ssh -L)", EXIT_USAGE)
        mqtt = planning.uses_mqtt(self.settings.run_args)
        if opts.mqtt_password_file and not mqtt:
            raise DeployError("--mqtt-password-file is for a service that publishes: add --run-args "
                              "'--mqtt mqtt://USER@BROKER/TOPIC/PREFIX'", EXIT_USAGE)
        # only a service that publishes gets it: $EDGELITE_MQTT_PASSWORD stays here otherwise
        self.mqtt_password = read_secret(opts.mqtt_password_file, env=MQTT_PASSWORD_ENV, option="--mqtt-password-file",
                                         what="MQTT password", error=DeployError) if mqtt else None

    # 1 -------------------------------------------------------------------------------------------
    def preflight(self) -> None:
        opts = self.opts
        self.steps.step("preflight", str(opts.connection.target))
        self.facts = facts = run_preflight(self.remote, opts.connection.dir)
        local = planning.local_file(opts.source)
        assessment = assess(facts, source="file" if local else opts.source, offline=opts.offline)
        self.steps.say(report(facts, str(opts.connection.target), assessment))
        if assessment.problems:
            raise DeployError(f"{opts.connection.target} cannot run edgelite: {'; '.join(assessment.problems)}", EXIT_PREFLIGHT)
        self.agent = Agent(self.remote, facts.get("dir"))
        self.transfer = opts.transfer
        if self.transfer == "auto":
            self.transfer = "rsync" if facts.yes("rsync") and self.remote.has_rsync_locally() else "scp"

    # 2 -------------------------------------------------------------------------------------------
    def package(self) -> None:
        opts, facts = self.opts, self.facts
        self.steps.step("package", "edgelite wheel" + (" + the device's wheels (--offline)" if opts.offline else ""))
        builder = Builder(opts.offline, opts.wheel, log=self.steps.say)
        art = builder.for_device(facts, planning.extras_for(self.settings))  # + paho-mqtt for --mqtt
        if art.constraints != builder.constraints:  # apt's numpy stays the venv's numpy
            self.steps.say(f"  keeping the device's system numpy {facts.get('system_numpy')} (apt's; the venv gets "
                           "no numpy of its own)")
        # the plan holds the secrets' salted digests (a new token or password, a new release), never the secrets
        salt = facts.get("token_salt") or ""
        self.settings = dataclasses.replace(
            self.settings, token_sha256=planning.token_digest(salt, self.token) if self.token else "",
            mqtt_password_sha256=planning.token_digest(salt, self.mqtt_password) if self.mqtt_password else "")
        self.plan = planning.make_plan(facts, self.settings, self.bundle, art)
        deps = sorted(art.house.glob("*.whl")) if art.house else []
        mb = sum(p.stat().st_size for p in deps) / 1e6
        self.steps.say(f"  {art.wheel.name}" + (f" + {len(deps)} device wheels ({mb:.0f} MB, {facts.platform_tag()}, "
                                                 f"cp{facts.python_tag().replace('.', '')})" if opts.offline else ""))
        need = space.needed(facts, self.bundle, art, planning.local_file(opts.source))
        self.steps.say(f"  needs {need.total_mb} MB on the device ({need.parts()}), {facts.disk_free_mb} MB free")
        if refusal := space.problem(facts, need, opts.offline):  # before anything but the agent is copied
            raise DeployError(f"{opts.connection.target} cannot run edgelite: {refusal}", EXIT_PREFLIGHT)

    # 3 -------------------------------------------------------------------------------------------
    def push(self) -> None:
        remote, plan, transfer, bid = self.remote, self.plan, self.transfer, self.bundle.id
        self.steps.step("push", f"bundle {bid}, wheels and agent to {plan['root']} ({transfer})")
        remote.makedirs(plan["dirs"])
        if plan["requests"]["trust"]:
            self.steps.say("  " + trust_note(self.agent.request(plan["requests"]["trust"])))
        state = self.agent.request(plan["requests"]["prepare-bundle"])
        if state.get("damaged"):
            self.steps.say(f"  the device's copy of bundle {bid} was damaged ({'; '.join(state['damaged'])}); re-sending")
        if not state.get("present"):
            remote.push([self.bundle.path], plan["bundle"]["dest"], transfer=transfer, checksum=True,
                        delete=True, contents=True)
            r = self.agent.request(plan["requests"]["accept-bundle"], check=False)
            if r.get("exit_code") == EXIT_CHECKSUM:
                raise DeployError(f"the bundle failed its sha256 check on the device ({'; '.join(r.get('problems', []))}); "
                                  "nothing was switched", EXIT_CHECKSUM)
            if r.get("exit_code") == EXIT_UNTRUSTED:
                raise DeployError(f"{r.get('error')}; nothing was switched, the previous release keeps serving",
                                  EXIT_UNTRUSTED)
            if not r["ok"]:
                raise failure(r, "accepting the bundle failed on the device")
        for item in (plan["wheel"], plan["constraints"], plan["media"], plan["installer"]):
            if item:
                remote.put(item["src"], item["dest"], transfer=transfer)
        if plan["deps"]:
            remote.push([Path(plan["deps"]["src"])], plan["deps"]["dest"], transfer=transfer, contents=True)
        n_files = len([p for p in self.bundle.path.rglob("*") if p.is_file()])
        self.steps.say(f"  bundle {bid} ({n_files} files) {'was already on the device' if state.get('present') else 'sent'}"
                       "; sha256 of every file verified on the device")

    # 4 -------------------------------------------------------------------------------------------
    def install(self) -> None:
        opts, env = self.opts, self.plan["release"]["env"]
        self.steps.step("install", f"venv {env} (--system-site-packages)")
        venv, lines = self.agent.run_detached(
            self.plan["requests"]["venv"], on_line=(lambda ln: self.steps.say("  " + ln)) if opts.connection.verbose else None)
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
        detail = (f"venv {env} reused" if venv.get("reused")
                  else f"venv {env} created in {venv.get('seconds')} s ({how}, {venv.get('installer', 'pip')})")
        vers = venv.get("versions") or {}
        self.steps.say("  " + detail + (": " + ", ".join(f"{k} {v}" for k, v in vers.items()) if vers else ""))

    # 5 -------------------------------------------------------------------------------------------
    def smoke_test(self) -> None:
        if not self.opts.smoke_test:
            self.steps.step("smoke test", "skipped (--no-smoke-test)")
            return
        self.steps.step("smoke test", "one inference with the new bundle on the device")
        smoke = self.agent.request(self.plan["requests"]["smoke"], check=False, ssh_timeout=900)
        if not smoke["ok"]:
            raise DeployError(f"smoke test failed on the device: {smoke.get('error')}; nothing was switched, "
                              "the previous release keeps serving",
                              EXIT_UNTRUSTED if smoke.get("exit_code") == EXIT_UNTRUSTED else EXIT_SMOKE)
        self.steps.say(f"  {smoke.get('label')} {smoke.get('score') or 0:.2f}, {smoke.get('inference_ms') or 0:.1f} ms "
                       f"inference ({smoke.get('seconds')} s with start-up)")
        if pick := smoke.get("pick"):  # --format auto: what the trial picked; the service starts from its cache
            self.steps.say(f"  format auto: {pick.get('model')} x{pick.get('threads')} threads, {pick.get('why')} "
                           f"(trial {pick.get('trial_s')} s, measured {pick.get('measured')})")

    # 6 + 7 ---------------------------------------------------------------------------------------
    def switch(self) -> dict:
        opts, plan = self.opts, self.plan
        if plan["requests"]["configure"]:
            self.agent.request(plan["requests"]["configure"])
        secrets = {k: v for k, v in (("token", self.token), ("mqtt_password", self.mqtt_password)) if v}
        rid = self.agent.request({**plan["requests"]["release"], **secrets})["release"]  # to its 0600 env file
        self.steps.step("switch", f"{CURRENT} -> {RELEASES}/{rid}, " + ("service not managed (--no-service)" if opts.no_service
                                                                   else f"restarting the {plan['mode']} service ({plan['unit']})"))
        result = commit(self.agent, {**plan["requests"]["commit"], "release": rid}, self.steps)
        result["elapsed_s"] = round(self.steps.elapsed(), 1)
        port = opts.http.rsplit(":", 1)[-1]
        self.steps.say(f"deployed {rid} to {opts.connection.target} in {self.steps.elapsed():.0f} s" +
                       ("" if opts.no_service else f"; preview on the device at http://{opts.http}/ "
                        f"(ssh -L {port}:{opts.http} {opts.connection.target.destination})"))
        return result


def commit(agent: Agent, request: dict, steps: Steps, *, label: str = "health") -> dict:
    """Start the device-side switch/restart/health/rollback transaction (a detached `commit` or `rollback`
    request) and follow it to its end."""
    result, _ = agent.run_detached(request, on_line=lambda ln: steps.say("  " + ln))
    unit = result.get("unit") or {}
    if unit.get("verified"):
        steps.say(f"  systemd-analyze verify: {unit.get('findings') or 'the unit is clean'}")
    if result.get("ok"):
        h = result.get("health") or {}
        steps.step(label, ("not checked (--no-service)" if request.get("no_service") else
                           f"{result.get('why')}: {h.get('frames')} frames, {h.get('fps')} fps, model {h.get('model')}"))
        return result
    for ln in result.get("log_tail") or []:
        steps.say("  | " + ln)
    if "rolled_back_to" in result:  # the agent's one line for an unhealthy release
        raise DeployError(str(result.get("error")), EXIT_UNHEALTHY)
    if result.get("exit_code") == EXIT_UNTRUSTED:  # refused before anything was switched
        raise DeployError(f"{result.get('error')}; nothing was switched", EXIT_UNTRUSTED)
    raise DeployError(f"switching to {request.get('release')} failed: {result.get('why') or result.get('error')}",
                      EXIT_UNHEALTHY)


def check_signed(bundle: Path, allowed_signers: str) -> None:
    """Refuse (exit 10), before touching the device, to install a trust list that the bundle itself fails."""
    try:
        verify_with(bundle, allowed_signers)
    except SignatureError as e:
        raise DeployError(f"refusing to deploy: the trust list given (--trust/--allowed-signers) refuses this "
                          f"bundle: {e}", EXIT_UNTRUSTED) from None


def trust_note(reply: dict) -> str:
    """One line for the agent's reply to a `trust` request."""
    keys = reply.get("trusted") or []
    if not keys:
        return "trust list removed: the device runs unsigned bundles again" if reply.get("changed") else \
            "no trust list on the device (nothing to remove)"
    note = (f"trust list {'installed' if reply.get('changed') else 'unchanged'}: only bundles signed by "
            f"{', '.join(keys)} run on the device")
    if reply.get("current_trusted") is False:
        note += "; the release serving now is not signed by these keys (this deploy replaces it)"
    return note


# --------------------------------------------------------------------------- status, logs, rollback
def device_status(conn: Connection) -> dict:
    with conn.remote() as remote:
        return Agent(remote, conn.dir).call("status")


def format_status(st: dict, target: Target) -> str:
    r = read_status(st)
    lines = [f"edgelite on {target} ({r['dir']})"]
    pid = f", pid {r['pid']}" if r["pid"] else ""
    lines.append(f"  service   {r['mode']} {r['unit'] or ''}: {r['service']}{pid}, {r['restarts']} restarts")
    if r["release"]:
        lines.append(f"  current   {r['release']}: bundle {r['bundle']}, source {redact_url(str(r['source']))}, "
                     f"http {r['http']}" + (f", format {r['format']}" if r["format"] else ""))
    else:
        lines.append("  current   nothing")
    if r["health_status"] is not None:
        lines.append(f"  health    HTTP {r['health_http']} {r['health_status']}: {r['frames']} frames, "
                     f"{r['fps']} fps, model {r['health_model']}, last result {r['last_result_age_s']} s ago")
    elif r["health"]:
        lines.append(f"  health    {r['health']}")
    if r["pick"]:
        lines.append(f"  pick      {r['pick']}")
    lines.append("  releases  " + (", ".join(rid + (" (current)" if rid == r["release"] else "") for rid in r["releases"])
                                   or "none") + " (oldest first, in the agent's own order)")
    if r["device_time"]:  # release ids carry the device's wall clock, which a Pi without an RTC gets wrong
        lines.append(f"  clock     device time {r['device_time']}, up {r['since_boot_s']} s")
    if r["failed"]:
        lines.append("  failed    " + ", ".join(r["failed"]))
    if r["trusted"] is not None:
        lines.append("  trust     only bundles signed by " + (", ".join(r["trusted"]) or "no key (the list is empty)"))
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


def rollback(conn: Connection, health_timeout: float = HEALTH_TIMEOUT, out=None) -> dict:
    """Go back one release (the newest good release older than the current one), health-checked."""
    steps = Steps(out)
    with conn.remote() as remote:
        agent = Agent(remote, conn.dir)
        info = agent.call("previous")
        if not info.get("previous"):
            raise DeployError(f"nothing to roll back to on {conn.target}: {info.get('current') or 'no release'} "
                              "is the oldest release kept", EXIT_USAGE)
        steps.n = 5
        steps.step("switch", f"rollback: {CURRENT} -> {RELEASES}/{info['previous']} (from {info.get('current')})")
        result = commit(agent, {"command": "commit", "release": info["previous"], "health_timeout": health_timeout,
                                "keep": None}, steps)  # a rollback removes no release
        steps.say(f"rolled back {conn.target} to {info['previous']}")
        return result


def pull_frames(conn: Connection, dest: str | Path, transfer: str = "auto", out=None,
                caps: Caps | None = None) -> list[str]:
    """Move the frames the device's service kept (`deploy --save-uncertain`: DIR/frames) into `dest`: each
    file is removed there once it is here, so the device's capped folder has room again. `caps` bound one
    pull (edgelite.remote.pulled); at a cap one warning line says to pull again for the rest."""
    out = out or sys.stdout
    with conn.remote() as remote:
        facts = run_preflight(remote, conn.dir)  # this agent, whatever an older deploy left there
        if not facts.yes(FRAMES):
            raise DeployError(f"{conn.target} has no {conn.dir}/{FRAMES}: deploy with --save-uncertain first "
                              "(the service then keeps its low-confidence frames there)", EXIT_USAGE)
        if transfer == "auto":
            transfer = "rsync" if facts.yes("rsync") and remote.has_rsync_locally() else "scp"
        names = remote.get(f"{facts.get('dir')}/{FRAMES}", dest, transfer=transfer, remove_source=True, caps=caps,
                           warn=lambda line: print(line, file=out, flush=True))
    print(f"pulled {len(names)} frames from {conn.target} into {dest}", file=out, flush=True)
    return names


def set_trust(conn: Connection, allowed_signers: str, remove: bool = False, out=None) -> dict:
    """`deploy --trust KEY.pub | --allowed-signers FILE | --remove-trust` without a bundle: only the trust list."""
    if remove and allowed_signers:
        raise DeployError("--remove-trust deletes the device's trust list; --trust/--allowed-signers set it: "
                          "pass one or the other", EXIT_USAGE)
    with conn.remote() as remote:
        run_preflight(remote, conn.dir)  # this agent, whatever an older deploy left there
        request = {"command": "trust", "dir": conn.dir, **({"remove": True} if remove else {"signers": allowed_signers})}
        reply = Agent(remote, conn.dir).request(request)
    print(f"{conn.target}: {trust_note(reply)}", file=out or sys.stdout, flush=True)
    return reply


def uninstall(conn: Connection, out=None) -> None:
    with conn.remote() as remote:
        r = Agent(remote, conn.dir).call("uninstall", check=False)
        if not r["ok"]:
            raise failure(r, f"uninstall on {conn.target}")
        print(f"removed {r.get('removed')} and its service from {conn.target}", file=out or sys.stdout, flush=True)
