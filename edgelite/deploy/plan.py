"""The deploy plan, computed once from (device facts, settings, bundle, the files built for the device).

`edgelite deploy` (`edgelite.deploy.deploy`) executes it over `edgelite.remote`; `edgelite fleet` sends it
as JSON to the Ansible role (`python -m edgelite.fleet.plan`), whose tasks only copy the files it names
and send the agent requests it holds. Neither front end writes a device path, a default or a release
field itself: the paths come from `edgelite.remote.layout`, the defaults from the agent's protocol
(`edgelite.deploy.agent`), the source rule from `edgelite.device.source_kind`. Standard library only.

    >>> Settings().http, Settings().health_timeout, Settings().print_every
    ('127.0.0.1:8080', 90.0, 30)
    >>> needs_token("0.0.0.0:8080"), needs_token("8080")
    (True, False)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from edgelite.deploy.agent import DEFAULT_HTTP, HEALTH_TIMEOUT, KEEP, PRINT_EVERY
from edgelite.deploy.errors import EXIT_USAGE, DeployError
from edgelite.deploy.package import files_digest
from edgelite.deploy.preflight import Facts
from edgelite.device.source_kind import source_kind
from edgelite.http_address import is_loopback, parse_http_address
from edgelite.remote.layout import (
    BUNDLES,
    DEFAULT_DIR,
    FRAMES,
    INCOMING,
    MEDIA,
    RELEASES,
    RUN,
    WHEELS,
    unit_name,
)
from edgelite.whoami import whoami


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the user chose for one device (deploy's flags; a fleet host's inventory values)."""

    dir: str = DEFAULT_DIR
    source: str = "0"
    http: str = DEFAULT_HTTP
    format: str | None = None
    print_every: int = PRINT_EVERY
    run_args: tuple[str, ...] = ()
    threads: int = 0
    save_uncertain: bool = False
    token_sha256: str = ""  # the token's salted digest (`token_digest`; the token itself never enters a plan)
    mqtt_password_sha256: str = ""  # the MQTT password's salted digest, the same way (a new password, a new release)
    no_service: bool = False
    health_timeout: float = HEALTH_TIMEOUT
    keep: int = KEEP  # releases the device keeps after a healthy switch (the newest; the current one always)
    allowed_signers: str = ""  # the device's new trust list (allowed-signers text); "" leaves it as it is
    remove_trust: bool = False  # delete the device's trust list (it then runs unsigned bundles again)


@dataclasses.dataclass(frozen=True)
class BundleInfo:
    """A checked bundle: its id (sha256 of the manifest, 16 hex), folder and manifest."""

    id: str
    path: Path
    manifest: dict

    @property
    def models(self) -> list[dict]:
        return [e for e in self.manifest.get("models", []) if e.get("status", "ok") == "ok"]


@dataclasses.dataclass(frozen=True)
class Artifacts:
    """The files built on the workstation for one device (`edgelite.deploy.artifacts.Builder.for_device`)."""

    wheel: Path
    constraints: Path | None  # the pins (the device's system numpy kept when it has one)
    house: Path | None  # --offline: every dependency wheel
    env: str  # the venv id: everything installed into it
    wheels: tuple[str, ...] | None = None  # --offline: the house's wheels the device installs --no-deps
    installer: Path | None = None  # --offline: uv's wheel for the device (the agent runs the binary inside)
    extras: tuple[str, ...] = ()  # edgelite's extras installed with it (`extras_for`: mqtt for --mqtt)


def local_file(source: str) -> Path | None:
    """The file here that a --source names (copied to the device's media/ and looped), else None."""
    if source_kind(source) != "path":
        return None
    p = Path(source).expanduser()
    return p.resolve() if p.is_file() else None


def needs_token(http: str) -> bool:
    """True when --http serves the preview beyond the device's loopback (`edgelite run` then needs a token)."""
    host, _ = parse_http_address(http, error=DeployError)
    return not is_loopback(host)


#: the `edgelite run` option whose output needs paho-mqtt (edgelite's `mqtt` extra) in the device venv
MQTT_FLAG = "--mqtt"


def uses_mqtt(run_args) -> bool:
    """True when the `edgelite run` arguments publish to a broker (`--mqtt URL` / `--mqtt=URL`; `run` refuses
    an abbreviation, so none slips past).

    >>> uses_mqtt(("--below", "0.5", "--mqtt", "mqtt://b/x")), uses_mqtt(("--mqtt=mqtt://b/x",)), uses_mqtt(("--mqtt-ca", "c"))
    (True, True, False)
    """
    return any(a == MQTT_FLAG or a.startswith(MQTT_FLAG + "=") for a in map(str, run_args))


def extras_for(settings: Settings) -> tuple[str, ...]:
    """The edgelite extras the device venv needs besides the runtime: `mqtt` (paho-mqtt) when the service
    publishes. `deploy` and `fleet` both ask this, so the venv (and --offline's wheelhouse) holds what runs."""
    return ("mqtt",) if uses_mqtt(settings.run_args) else ()


def token_digest(salt: str, token: str) -> str:
    """sha256("SALT:TOKEN"), the salt the device's own (its facts' token_salt, random, made once): what a plan
    holds of a token. The fleet role computes the same in Jinja, so either front end sees the same key.

    >>> token_digest("ab", "t") == token_digest("ab", "t") != token_digest("cd", "t")
    True
    """
    return hashlib.sha256(f"{salt}:{token}".encode()).hexdigest()


def release_key(release: dict, token_sha256: str, mqtt_password_sha256: str = "") -> str:
    """What makes a release: a device whose current release has this key (and is healthy) is left alone. The
    secrets count by their salted digests: a new token or MQTT password is a new release.

    >>> release_key({"bundle": "b1"}, "") == release_key({"bundle": "b1"}, ""), len(release_key({}, ""))
    (True, 16)
    >>> release_key({"bundle": "b1"}, "", "d1") != release_key({"bundle": "b1"}, "", "d2")
    True
    """
    secrets = {"token": token_sha256 or None, **({"mqtt_password": mqtt_password_sha256} if mqtt_password_sha256 else {})}
    blob = json.dumps({**release, **secrets}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _copy(src: Path, dest: str) -> dict:
    return {"src": str(src), "dest": dest}


def make_plan(facts: Facts, settings: Settings, bundle: BundleInfo, art: Artifacts) -> dict:
    """The plan for one device (JSON-able): folders, files to copy, the release and every agent request.

    `facts` must have passed `preflight.assess` (its `dir` is the expanded deploy folder).
    """
    root = facts.get("dir")
    if not root:
        raise DeployError("the device's facts lack its deploy folder (the preflight did not finish)", EXIT_USAGE)
    wheel_dir = f"{root}/{WHEELS}/edgelite/{files_digest([art.wheel])}"
    deps = _copy(art.house, f"{root}/{WHEELS}/deps/{art.house.name}") if art.house else None
    if deps:
        deps["src"] = f"{art.house}/"  # the folder's contents
    tools = _copy(art.installer, f"{root}/{WHEELS}/tools/{art.installer.name}") if art.installer else None
    cons = (_copy(art.constraints, f"{root}/{WHEELS}/constraints-{files_digest([art.constraints])}.txt")
            if art.constraints else None)
    source, media = settings.source, None
    local = local_file(settings.source)
    if local:
        media = _copy(local, f"{root}/{MEDIA}/{files_digest([local])[:8]}-{local.name}")
        source = media["dest"]
    run_args = [str(a) for a in settings.run_args]
    if settings.threads > 0:
        run_args += ["--num-threads", str(int(settings.threads))]
    if settings.save_uncertain:
        run_args += ["--save-uncertain", f"{root}/{FRAMES}"]
    release = {"bundle": bundle.id, "env": art.env, "source": source, "http": settings.http,
               "format": settings.format or None, "print_every": int(settings.print_every),
               "run_args": run_args, "source_is_file": bool(local)}
    key = release_key(release, settings.token_sha256, settings.mqtt_password_sha256)
    version = art.wheel.name.split("-")[1] if art.wheel.name.count("-") >= 2 else None
    meta = {"models": [e.get("name") for e in bundle.models],
            "sha256": {e.get("name"): (e.get("sha256") or "")[:12] for e in bundle.models},
            "edgelite": version, "wheel": art.wheel.name, "bundle_path": str(bundle.path),
            "deployed_by": whoami(), "key": key}
    release = {**release, "meta": meta}
    mode, user = facts.service_mode, facts.get("user")
    unit = unit_name(settings.dir, root)
    wheel = _copy(art.wheel, f"{wheel_dir}/{art.wheel.name}")

    def req(command: str, **fields) -> dict:
        return {"command": command, "dir": root, **fields}

    dirs = [root, f"{root}/{BUNDLES}/{INCOMING}", wheel_dir, f"{root}/{MEDIA}", f"{root}/{RELEASES}",
            f"{root}/{RUN}"] + ([deps["dest"]] if deps else []) + ([f"{root}/{WHEELS}/tools"] if tools else [])
    return {
        "root": root, "user": user, "mode": mode, "unit": unit, "key": key, "dirs": dirs,
        "bundle": _copy(bundle.path, f"{root}/{BUNDLES}/{INCOMING}/{bundle.id}") | {"id": bundle.id},
        "wheel": wheel, "deps": deps, "installer": tools, "constraints": cons, "media": media,
        "release": release,
        "requests": {
            "mkdirs": req("mkdirs", paths=dirs),  # the fleet role's; `edgelite deploy` makes `dirs` over ssh
            "status": req("status"),
            # the trust list changes only by this explicit request, before the bundle is checked against it
            "trust": (req("trust", signers=settings.allowed_signers) if settings.allowed_signers
                      else req("trust", remove=True) if settings.remove_trust else None),
            "prepare-bundle": req("prepare-bundle", bundle=bundle.id),
            "accept-bundle": req("accept-bundle", bundle=bundle.id),
            "venv": req("venv", env=art.env, wheel=wheel["dest"], extras=list(art.extras), offline=deps is not None,
                        find_links=deps["dest"] if deps else None, constraints=cons["dest"] if cons else None,
                        wheels=list(art.wheels) if deps and art.wheels is not None else None,
                        installer=tools["dest"] if tools else None),
            "smoke": req("smoke", env=art.env, bundle=bundle.id, format=settings.format or None),
            "configure": None if settings.no_service else req("configure", mode=mode, unit=unit, user=user),
            "release": req("release", **release),
            # + "release": the id the release request answers
            "commit": req("commit", health_timeout=float(settings.health_timeout), no_service=settings.no_service,
                          keep=int(settings.keep)),
        },
    }
