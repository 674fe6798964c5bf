"""The device folder `edgelite deploy` lays out under DIR (default ~/edgelite), written once.

Standard library only and free of other edgelite imports: the device agent ships this file (and finds
the deployed install with it for `edgelite bench --host`).

    >>> lay = Layout("/home/pi/edgelite")
    >>> str(lay.current), str(lay.venv_bin("env1", "edgelite"))
    ('/home/pi/edgelite/current', '/home/pi/edgelite/venvs/env1/bin/edgelite')
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DEFAULT_DIR = "~/edgelite"

# names under DIR (the workstation joins them to a DIR it has not expanded: f"{rq(dir)}/{AGENT}")
AGENT = "agent.pyz"  # the device agent (a zipapp: edgelite.remote.agent.build_agent)
AGENT_UNPACKED = ".agent"  # .agent/<sha256 of agent.pyz>/: the agent unpacked once, so Python caches its bytecode
BUNDLES = "bundles"  # bundles/<id>/: verified bundles; <id> = sha256 of the manifest (16 hex)
INCOMING = ".incoming"  # bundles/.incoming/<id>/: pushed here first; the agent verifies, then renames
WHEELS = "wheels"  # the edgelite wheel(s) and, with --offline, every dependency wheel
VENVS = "venvs"  # venvs/<env>/: a venv (--system-site-packages) with edgelite; VENV_READY when complete
MEDIA = "media"  # --source files pushed from the workstation
FRAMES = "frames"  # `edgelite run --save-uncertain` keeps frames here (deploy --save-uncertain); --pull-frames fetches them
RELEASES = "releases"  # releases/<rid>/: RELEASE_JSON + RUN (the service's ExecStart)
CURRENT = "current"  # -> releases/<rid>, switched atomically
UNIT_FILE = "edgelite.service"  # the systemd unit (written even where there is no systemd)
SERVICE_JSON = "service.json"  # how the service runs here: systemd | systemd-user | supervisor | none
RUN = "run"  # DIR/run/: supervisor.pid, state.json, notify socket, commit logs; releases/<rid>/run: a script
CACHE = "cache"  # cache/<key>.json: `run --format auto`'s measured pick per bundle + device (edgelite.device.pick)
PICK_CACHE_ENV = "EDGELITE_PICK_CACHE"  # how the smoke test and a release's run script point `edgelite run` at it
# a release's env file gives `edgelite run --mqtt` its password here (= edgelite.device.token.MQTT_PASSWORD_ENV,
# which the agent's zipapp does not hold; tests/test_architecture.py holds the two equal)
MQTT_PASSWORD_ENV = "EDGELITE_MQTT_PASSWORD"
LOGS = "log"  # log/edgelite.log (service output under the supervisor), log/deploys.log (one line a switch)
LOG = "edgelite.log"
DEPLOYS_LOG = "deploys.log"
SUPERVISOR_PID = "supervisor.pid"
STATE = "state.json"
# run/trial: a switch not yet proved healthy (three lines: the boot it began in, the release, the one before);
# a release's run script that finds itself on trial in a later boot (a power cut, a reboot mid-deploy) goes
# back to the one before -- an unproven update never becomes what a device boots into
TRIAL = "trial"
LOCK = ".lock"  # one switch at a time
MARKER = ".edgelite-deploy"  # written on first deploy: only a folder holding it (or only these names) is ours
RELEASE_JSON = "release.json"  # {"id", "bundle": <bundle id>, "venv": <env>, ...}
RELEASE_ENV = "env"  # releases/<rid>/env (0600): the source and the token, for the unit's EnvironmentFile=
TOKEN_SALT = "token-salt"  # run/token-salt (0600): this device's random salt for the fleet's token digest
FAILED_SUFFIX = ".failed"  # releases/<rid>.failed: a release that was not healthy
VENV_READY = ".ready"
# an OpenSSH allowed-signers file: once it exists the device runs only bundles signed by a key in it. Only
# the agent's `trust` request writes it (deploy --trust / --allowed-signers); no bundle push reaches it.
TRUSTED_SIGNERS = "trusted_signers"


class Layout:
    """Paths of the device folder rooted at `root` (`~` expanded: this runs on the device)."""

    def __init__(self, root: str | os.PathLike = DEFAULT_DIR):
        self.root = Path(os.path.expanduser(str(root))).absolute()
        self.agent = self.root / AGENT
        self.agent_unpacked = self.root / AGENT_UNPACKED
        self.bundles = self.root / BUNDLES
        self.incoming = self.bundles / INCOMING
        self.wheels = self.root / WHEELS
        self.venvs = self.root / VENVS
        self.media = self.root / MEDIA
        self.frames = self.root / FRAMES
        self.releases = self.root / RELEASES
        self.current = self.root / CURRENT
        self.unit_file = self.root / UNIT_FILE
        self.service_json = self.root / SERVICE_JSON
        self.run = self.root / RUN
        self.logs = self.root / LOGS
        self.cache = self.root / CACHE
        self.log = self.logs / LOG
        self.deploys_log = self.logs / DEPLOYS_LOG
        self.supervisor_pid = self.run / SUPERVISOR_PID
        self.state = self.run / STATE
        self.trial = self.run / TRIAL
        self.lock = self.root / LOCK
        self.marker = self.root / MARKER
        self.trusted_signers = self.root / TRUSTED_SIGNERS

    def venv_bin(self, env: str, program: str) -> Path:
        return self.venvs / env / "bin" / program

    def current_rid(self) -> str | None:
        """The release `current` points at, or None when nothing was switched to yet."""
        try:
            return Path(os.readlink(self.current)).name
        except OSError:
            return None

    def read_release(self, rid: str) -> dict | None:
        """releases/<rid>/release.json, or None when it is missing or unreadable."""
        try:
            return json.loads((self.releases / rid / RELEASE_JSON).read_text())
        except (OSError, ValueError):
            return None

    def deployed(self) -> dict:
        """The current release's edgelite command and bundle folder, each None when absent.

        >>> Layout("/nonexistent/edgelite").deployed()
        {'release': None, 'edgelite': None, 'bundle': None}
        """
        rid = self.current_rid()
        rel = (self.read_release(rid) if rid else None) or {}
        exe = self.venv_bin(rel["venv"], "edgelite") if rel.get("venv") else None
        bundle = self.bundles / rel["bundle"] if rel.get("bundle") else None
        return {"release": rid if rel else None,
                "edgelite": str(exe) if exe and os.access(exe, os.X_OK) else None,
                "bundle": str(bundle) if bundle and bundle.is_dir() else None}


def unit_name(directory: str, root: str) -> str:
    """The systemd unit of an install: `edgelite` for the default folder, else one unit per folder
    (`root` is the expanded path), so two installs on one device do not clash."""
    if directory.rstrip("/") in (DEFAULT_DIR, "edgelite"):
        return "edgelite"
    return "edgelite-" + hashlib.sha256(root.encode()).hexdigest()[:8]
