"""The workstation's side of the device agent: build its zipapp, push it, send it JSON requests over SSH.

The agent (`edgelite/deploy/agent/`, its protocol in that package's docstring) is the only code that runs on
a device; `edgelite deploy`, `edgelite fleet` and `edgelite bench --host` all reach it through here. This
module only reads the agent's source files (to pack them) and never imports them: the remote layer stays
below deploy/ and bench/. Nothing here reads the agent's output as text: the reply is stdout, one JSON
object; a failure reply becomes a `RemoteError` with the agent's own exit code.

    >>> agent = push_agent(remote, "~/edgelite")                              # doctest: +SKIP
    >>> agent.call("facts")["facts"]["uname_m"]                               # doctest: +SKIP
    'aarch64'
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zipapp
from collections.abc import Callable
from pathlib import Path

from edgelite.errors import EXIT_REFUSED, EXIT_REMOTE, EXIT_USAGE
from edgelite.remote.errors import RemoteError
from edgelite.remote.layout import AGENT, AGENT_UNPACKED
from edgelite.remote.ssh import Remote, python_file_command

#: the exit status of the remote command when DIR holds no agent (the shell's "command not found"), and
#: when the device has no python3 to run it
NO_AGENT = 127
NO_PYTHON = 126
#: the oldest device Python the agent (and edgelite) runs on; the preflight refuses older ones
MIN_PYTHON = (3, 10)

#: what the device agent's zipapp holds besides its own package (all standard library only)
AGENT_PACKAGE = "edgelite/deploy/agent"
AGENT_SUPPORT = ("edgelite/__init__.py", "edgelite/errors.py", "edgelite/manifest.py", "edgelite/jsonfile.py",
                 "edgelite/signature.py", "edgelite/http_address.py", "edgelite/deploy/__init__.py",
                 "edgelite/remote/__init__.py", "edgelite/remote/layout.py")  # the device folder's names
# Python never caches bytecode for a zip: every request would compile the whole agent again (2.5 s a request
# on the emulated Pi, a second on a Pi 4). So the agent runs from a copy unpacked once beside it, keyed by
# the archive's sha256 (older copies go a day later), where Python keeps its .pyc files. The copy is used only
# when it holds UNPACKED_OK, written after every file was fsync'ed: a power cut mid-unpack must not leave a
# folder of empty .py files that every later request (a rerun of the deploy too: same key) would run.
UNPACKED_OK = ".complete"
UNPACK = f"""
def _unpacked():
    import hashlib, os, shutil, time, zipfile
    pyz = os.path.abspath(sys.path[0])

    def fsync(path, flags=os.O_RDONLY):
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    try:
        with open(pyz, "rb") as f:
            key = hashlib.sha256(f.read()).hexdigest()[:16]
        base = os.path.join(os.path.dirname(pyz), {AGENT_UNPACKED!r})
        dest = os.path.join(base, key)
        if not os.path.isfile(os.path.join(dest, {UNPACKED_OK!r})):
            tmp = "%s.%d.tmp" % (dest, os.getpid())
            zipfile.ZipFile(pyz).extractall(tmp)
            open(os.path.join(tmp, {UNPACKED_OK!r}), "w").close()
            for folder, _, files in os.walk(tmp):
                for name in files:
                    fsync(os.path.join(folder, name))
                fsync(folder, os.O_RDONLY | os.O_DIRECTORY)
            if os.path.isdir(dest) and not os.path.isfile(os.path.join(dest, {UNPACKED_OK!r})):
                try:  # what a power cut left of an earlier unpack: out of the way
                    os.rename(dest, "%s.%d.old" % (dest, os.getpid()))
                except OSError:
                    pass
            try:
                os.rename(tmp, dest)
                fsync(base, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:  # another request unpacked it first
                shutil.rmtree(tmp, ignore_errors=True)
            for old in os.listdir(base):  # older agents, once no request of theirs can still be running
                path = os.path.join(base, old)
                if old != key and os.path.getmtime(path) < time.time() - 86400:
                    shutil.rmtree(path, ignore_errors=True)
        return dest
    except (OSError, zipfile.BadZipFile):
        return None  # run from the archive (slower, same code)


_dir = _unpacked()
if _dir:
    sys.path[0] = _dir
"""
# the archive's own __main__.py (zipapp's `main=` would drop the exit status); on a Python older than the
# agent's own floor it answers the preflight's refusal as a failure reply instead of a traceback
AGENT_MAIN = (
    "import sys\n\n"
    f"if sys.version_info < {MIN_PYTHON}:\n"
    "    print('{\"ok\": false, \"protocol\": 1, \"exit_code\": %d, \"error\": \"Python too old: the device has Python "
    f"%d.%d; edgelite needs {'.'.join(map(str, MIN_PYTHON))} or newer (Raspberry Pi OS Bookworm ships 3.11): "
    "upgrade the OS\"}' % ((" + str(EXIT_REFUSED) + ",) + tuple(sys.version_info[:2])))\n"
    f"    sys.exit({EXIT_REFUSED})\n"
    + UNPACK +
    "from edgelite.deploy.agent.__main__ import main  # noqa: E402\n\nsys.exit(main())\n")


def cache_dir() -> Path:
    """~/.cache/edgelite (EDGELITE_CACHE overrides): the agent, wheels and wheelhouses built here."""
    base = os.environ.get("EDGELITE_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "edgelite")
    return Path(base).expanduser()


def tree_digest(root: Path, files: list[Path]) -> str:
    """sha256 over the files' paths relative to `root` and their bytes (16 hex)."""
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def agent_files() -> tuple[Path, list[Path]]:
    """(the folder holding `edgelite/`, the files of the agent's zipapp), from the edgelite imported here."""
    base = Path(__file__).resolve().parents[2]
    files = [base / f for f in AGENT_SUPPORT] + sorted((base / AGENT_PACKAGE).glob("*.py"))
    return base, files


def build_agent() -> Path:
    """The device agent as one zipapp (`python3 agent.pyz`), built from this edgelite's own source files
    and cached under the cache dir by their content: an unchanged agent is neither rebuilt nor re-sent."""
    base, files = agent_files()
    key = hashlib.sha256((tree_digest(base, files) + AGENT_MAIN).encode()).hexdigest()[:16]
    out = cache_dir() / "agent" / key / AGENT
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgelite-agent-") as tmp:
        src = Path(tmp) / "src"
        for f in files:
            dest = src / f.relative_to(base)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
        (src / "__main__.py").write_text(AGENT_MAIN)
        built = Path(tmp) / AGENT
        zipapp.create_archive(src, built, compressed=True)
        shutil.copyfile(built, out.with_suffix(".tmp"))
        os.replace(out.with_suffix(".tmp"), out)
    return out


def push_agent(remote: Remote, directory: str, *, transfer: str = "scp") -> Agent:
    """Copy this edgelite's agent (small, standard library only) to `directory`/agent.pyz on the device (made
    if missing) and return it: every device command starts here, so the agent is never older than this side.

    `transfer`: scp (SFTP; rsync may be missing there) or tar (one tar stream through the device's shell, as
    `bench --host` sends its files: `~/` is the shell's $HOME, whatever the SFTP server starts in).
    """
    remote.makedirs([directory])
    if transfer == "tar":
        remote.upload_tar([(build_agent(), AGENT)], directory)
    else:
        remote.put(build_agent(), f"{directory.rstrip('/')}/{AGENT}", transfer=transfer)
    return Agent(remote, directory)


class Agent:
    """The device agent at `root` (a device path, `~/` allowed) reached through `remote`."""

    def __init__(self, remote: Remote, root: str):
        self.remote, self.root = remote, root
        self.command_line = python_file_command(f"{root.rstrip('/')}/{AGENT}", missing=NO_AGENT,
                                                no_python=NO_PYTHON)

    def call(self, command: str, *, check: bool = True, ssh_timeout: float | None = 600, progress: bool = False,
             **fields) -> dict:
        """Send `{"command": command, "dir": root, **fields}`; the reply. With `check`, a failure reply raises
        RemoteError(its error, its exit code). With `progress`, the agent's progress lines (stderr) reach this
        terminal as they come instead of being kept for an error message."""
        request = {"command": command, "dir": self.root, **fields}
        r = self.remote.run(self.command_line, input=json.dumps(request), timeout=ssh_timeout, check=False,
                            capture_stderr=not progress)
        if r.returncode == NO_AGENT and not r.stdout.strip():
            raise RemoteError(f"nothing deployed at {self.root} on {self.remote.target} (no {AGENT} there)",
                              EXIT_USAGE)
        if r.returncode == NO_PYTHON and not r.stdout.strip():
            raise RemoteError(f"no python3 on {self.remote.target}: install it (sudo apt install python3 "
                              "python3-venv)", EXIT_REFUSED)
        try:
            reply = printable(json.loads(r.stdout))
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or "ok" not in reply:
            lines = [ln for ln in (r.stderr or "").splitlines() if ln.strip()][-3:]
            raise RemoteError(f"the device agent gave no reply to {command} (exit {r.returncode}): "
                              f"{'its messages are above' if progress else ' / '.join(lines) or 'no output'}",
                              EXIT_REMOTE)
        if check and not reply["ok"]:
            raise RemoteError(f"{command} on the device: {reply.get('error')}", int(reply.get("exit_code") or EXIT_REMOTE))
        return reply

    def request(self, request: dict, *, check: bool = True, ssh_timeout: float | None = 600) -> dict:
        """Send one request of a plan (`edgelite.deploy.plan`: {"command", "dir", ...}); see `call`."""
        fields = {k: v for k, v in request.items() if k not in ("command", "dir")}
        return self.call(request["command"], check=check, ssh_timeout=ssh_timeout, **fields)

    def run_detached(self, request: dict, *, on_line: Callable[[str], None] | None = None,
                     poll: float = 5.0) -> tuple[dict, list[str]]:
        """Start `request` (a plan's request) detached on the device and follow its progress lines until its
        reply, for as long as the agent says the job may take (`follow_s`).

        Returns (the job's reply, its progress lines). Killing this process does not stop the job.
        """
        started = self.request({**request, "detach": True})
        job, timeout = started["job"], float(started.get("follow_s") or 900)
        offset, output, deadline = 0, [], time.monotonic() + timeout
        while True:
            r = self.call("wait", check=False, ssh_timeout=poll + 120, job=job, offset=offset, timeout=poll)
            for line in r.get("output") or []:
                output.append(line)
                if on_line:
                    on_line(line)
            if not r["ok"]:
                raise RemoteError(f"lost track of the device-side {job}: {r.get('error')}", EXIT_REMOTE)
            offset = r["offset"]
            if r["done"]:
                return r["reply"], output
            if time.monotonic() > deadline:
                raise RemoteError(f"the device-side {job} gave no result within {timeout:.0f} s; "
                                  f"see {self.root}/run/{job}.log on the device", EXIT_REMOTE)

    def stream(self, command: str, on_line: Callable[[str], None], **fields) -> int:
        """A call whose progress lines are its answer (`logs` with follow): stream them until it ends."""
        request = json.dumps({"command": command, "dir": self.root, **fields})
        code, _ = self.remote.stream(self.command_line, input=request, on_line=lambda ln: on_line(printable(ln)))
        if code == NO_AGENT:
            raise RemoteError(f"nothing deployed at {self.root} on {self.remote.target}", EXIT_USAGE)
        return code


#: C0 controls but tab and newline, DEL and the C1 range: what moves a terminal's cursor, clears its screen,
#: retitles its window or starts an escape sequence (ESC, CSI 0x9b)
_CONTROL = {c: "?" for c in [*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f, *range(0x80, 0xa0)]}


def printable(value):
    r"""Every string in a device's reply (nested in lists and dicts too) with its control characters shown as
    `?`: nothing from a device reaches this terminal as an escape sequence.

    >>> printable({"release": "r1\x1b]0;owned\x07", "lines": ["ok\r\x1b[2J", "tab\tand\nnewline"]})
    {'release': 'r1?]0;owned?', 'lines': ['ok??[2J', 'tab\tand\nnewline']}
    """
    if isinstance(value, str):
        return value.translate(_CONTROL)
    if isinstance(value, list):
        return [printable(v) for v in value]
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    return value
