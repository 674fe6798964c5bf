"""The deploy directory on the device as the agent uses it (its names: `edgelite.remote.layout`), and the
agent's small helpers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
import zipimport
from pathlib import Path

from edgelite.errors import EXIT_FAILED, EXIT_USAGE, EdgeliteError
from edgelite.jsonfile import read_json
from edgelite.remote.layout import AGENT, FAILED_SUFFIX, MARKER, RELEASE_JSON
from edgelite.remote.layout import Layout as DeviceLayout

AGENT_FILE = AGENT  # DIR/agent.pyz, this agent


class AgentError(EdgeliteError):
    """A device-side step that failed; the reply carries `exit_code` and any `details`."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int | None = None, **details):
        super().__init__(message, exit_code)
        self.details = details


class Layout(DeviceLayout):
    """The device folder: its names are `edgelite.remote.layout`'s (written once, shared with `bench --host`);
    this adds what only the agent does there (create it, read releases, lock a switch)."""

    def entries(self) -> list[Path]:
        """Everything the agent makes directly under DIR: all that uninstall may remove."""
        return [self.agent, self.agent_unpacked, self.bundles, self.wheels, self.venvs, self.media, self.frames, self.releases, self.current,
                self.unit_file, self.service_json, self.run, self.logs, self.cache, self.lock, self.marker]

    def check_owned(self) -> None:
        """Refuse a folder edgelite deploy did not make (`--dir ~`): one without the marker that holds
        anything besides the agent's own names."""
        if self.marker.exists() or not self.root.is_dir():
            return
        ours = {p.name for p in self.entries()}
        foreign = sorted(p.name for p in self.root.iterdir() if p.name not in ours)
        if foreign:
            raise AgentError(f"{self.root} is not empty and was not made by edgelite deploy (no {MARKER}; it holds "
                             f"{', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}): pass a new or empty "
                             "--dir", EXIT_USAGE)

    def ensure(self) -> None:
        self.check_owned()
        for d in (self.root, self.bundles, self.incoming, self.wheels, self.venvs, self.media, self.releases,
                  self.run, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        if not self.marker.exists():
            self.marker.write_text("This folder is managed by `edgelite deploy`; `edgelite deploy --uninstall` "
                                   "removes what it made here.\n")

    def release(self, rid: str) -> dict:
        rel = self.read_release(rid)
        if not isinstance(rel, dict):
            raise AgentError(f"no release {rid} in {self.releases}")
        return rel

    def release_ids(self) -> list[str]:
        """Good (not failed) releases, oldest first (ids start with a UTC timestamp)."""
        if not self.releases.is_dir():
            return []
        return sorted(p.name for p in self.releases.iterdir()
                      if p.is_dir() and not p.name.endswith(FAILED_SUFFIX) and (p / RELEASE_JSON).exists())

    def service(self) -> dict:
        return read_json(self.service_json) or {"mode": "supervisor", "unit": "edgelite"}

    @contextlib.contextmanager
    def locked(self):
        """One switch at a time on this device (released by the kernel if the holder dies)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say("another deploy or rollback is switching this device; waiting for it")
                fcntl.flock(f, fcntl.LOCK_EX)
            yield


def say(msg: str) -> None:
    """A progress line: stderr (stdout carries only the JSON reply)."""
    print(msg, file=sys.stderr, flush=True)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def atomic_symlink(target: str, link: Path) -> None:
    """`ln -sfn target link.tmp && mv -T link.tmp link`: readers see the old or the new target, never none."""
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)  # rename(2) over the old symlink: atomic


def pid_alive_with(pid: int, *needles: str) -> bool:
    """True when `pid` runs and its command line contains every needle (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return all(n in cmdline for n in needles)


def agent_argv() -> list[str]:
    """The command line that starts this agent again (the supervisor, a detached job).

    From the zipapp: `python3 DIR/agent.pyz`; from a source tree (the tests), the same code from that tree.
    """
    loader = globals().get("__loader__")
    if isinstance(loader, zipimport.zipimporter):
        return [sys.executable, loader.archive]
    tree = str(Path(__file__).resolve().parents[3])
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {tree!r}); "
            "from edgelite.deploy.agent.__main__ import main; sys.exit(main())"]
