"""The deploy directory on the device as the agent uses it (its names: `edgelite.remote.layout`), and the
agent's small helpers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import time
import zipimport
from pathlib import Path

from edgelite.errors import EXIT_FAILED, EXIT_USAGE, EdgeliteError
from edgelite.jsonfile import fsync_dir, read_json
from edgelite.remote.layout import AGENT, FAILED_SUFFIX, MARKER, RUN
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
                self.unit_file, self.service_json, self.run, self.logs, self.cache, self.lock, self.marker, self.trusted_signers]

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
        """Good releases, oldest first by the agent's sequence (`seq` in release.json; not by the id's time,
        which is the device clock's and may be wrong), then by id: not failed, not hidden (half written or
        half removed), with a release.json that reads and a `run` that is not empty (what a power cut leaves
        of a release written by an agent that did not fsync)."""
        if not self.releases.is_dir():
            return []
        good = {p.name: self.read_release(p.name) for p in self.releases.iterdir()
                if p.is_dir() and not p.name.endswith(FAILED_SUFFIX) and not p.name.startswith(".")}
        return sorted((rid for rid, rel in good.items() if isinstance(rel, dict) and _size(self.releases / rid / RUN) > 0),
                      key=lambda rid: (_seq(good[rid]), rid))

    def next_seq(self) -> int:
        """The sequence number of the next release: one more than any release's here, failed ones too."""
        seen = [_seq(self.read_release(p.name)) for p in self.releases.iterdir() if p.is_dir()] if self.releases.is_dir() else []
        return max(seen, default=0) + 1

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


def _seq(rel: dict | None) -> int:
    """A release's place in the agent's own order; 0 for one written before releases had it (the oldest)."""
    seq = rel.get("seq") if isinstance(rel, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


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
    fsync_dir(link.parent)  # and durable: after a power cut `current` is not the old target again


def discard(path: Path) -> None:
    """Remove a release, venv or bundle folder so that a power cut never leaves half of it under its name:
    renamed to a hidden `.gc-` name first (which nothing selects; `sweep` finishes it), then deleted."""
    if not path.exists():
        return
    trash = path.with_name(f".gc-{path.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)


def sweep(folder: Path) -> list[str]:
    """Finish what a power cut interrupted in `folder`: `.gc-*` (half-removed) and `.*.partial` (half-written)."""
    gone = []
    for p in folder.iterdir() if folder.is_dir() else []:
        if p.name.startswith(".gc-") or (p.name.startswith(".") and p.name.endswith(".partial")):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
    return gone


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
