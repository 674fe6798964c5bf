"""A real sshd on 127.0.0.1 for the tests that reach a "device" over SSH (bench --host, edgelite.remote).

`root_sshd` is a factory fixture: `root_sshd(home, path)` starts a server that lets root in by a throwaway key only,
with the HOME and PATH the test chooses, and returns an `Sshd` (port, client key, known_hosts holding the
server's key, and the same as `ssh -o` options). Every server is stopped by pid at teardown.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def users(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """useradd / usermod / userdel, one at a time across the test workers (`make test` runs pytest-xdist):
    two at once can find /etc/passwd locked and fail ("cannot lock /etc/passwd; try again later")."""
    import fcntl

    with open("/run/lock/edgelite-tests-users.lock" if os.path.isdir("/run/lock") else "/tmp/edgelite-tests-users.lock",
              "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run(list(argv), check=check, capture_output=True)


def pids_of_uid(uid: int) -> list[int]:
    """Every process the user `uid` runs (from /proc)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.stat().st_uid == uid:
                    out.append(int(p.name))
            except OSError:
                pass
    return out


def stop_processes_of(uid: int) -> None:
    """End every process a device user runs (services started by deploys): TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_of_uid(uid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids_of_uid(uid) and time.monotonic() < deadline:
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Sshd:
    port: int
    key: Path  # the client's private key
    known_hosts: Path  # holds the server's host key
    dir: Path

    @property
    def options(self) -> list[str]:
        """The server as `ssh -o` options (for --ssh-option), strict about its host key."""
        return [f"Port={self.port}", f"IdentityFile={self.key}", "IdentitiesOnly=yes",
                f"UserKnownHostsFile={self.known_hosts}", "StrictHostKeyChecking=yes", "LogLevel=ERROR"]


@pytest.fixture
def root_sshd(tmp_path):
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd_bin).exists() or not shutil.which("ssh"):
        pytest.skip("openssh-server / openssh-client not installed")
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root (a non-root sshd can only serve its own user)")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    procs: list[subprocess.Popen] = []

    def start(home: Path, path: str = "/usr/bin:/bin") -> Sshd:
        d = tmp_path / f"sshd{len(procs)}"
        d.mkdir()
        for name in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
        (d / "authorized_keys").write_text((d / "user.pub").read_text())
        port = free_port()
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"Subsystem sftp /usr/lib/openssh/sftp-server\nSetEnv HOME={home} PATH={path}\n")
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {(d / 'host.pub').read_text()}")
        with open(d / "sshd.log", "w") as log:  # the child keeps its own copy
            procs.append(subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        return Sshd(port, d / "user", d / "known_hosts", d)

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)
