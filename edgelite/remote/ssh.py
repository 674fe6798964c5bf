"""SSH and file transfer to the device: OpenSSH's `ssh`, `rsync` (or `scp` when the device has no rsync).

Key authentication only (BatchMode=yes: never a password prompt), StrictHostKeyChecking=accept-new
by default (remember a new device, refuse a changed key) or `yes` with --strict-host-key (the key must
already be in known_hosts); never `no`. One control connection is shared by every command of a deploy.

    >>> t = parse_target("pi@raspberrypi.local:2222")
    >>> (t.user, t.host, t.port)
    ('pi', 'raspberrypi.local', 2222)
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edgelite.deploy.errors import EXIT_CONNECT, EXIT_REMOTE, EXIT_USAGE, DeployError
from edgelite.remote.target import Target
from edgelite.remote.target import parse_target as _parse_target


def parse_target(value: str) -> Target:
    """`user@host`, `user@host:port`, `host`, `ssh://user@host:port`, `user@[::1]:2222` (shared with
    `edgelite bench --host`, which lives on the device side)."""
    try:
        return _parse_target(value)
    except ValueError as e:
        raise DeployError(f"--host {value!r}: {e}", EXIT_USAGE) from None


def rq(path: str) -> str:
    """Quote a device path for the remote shell, keeping a leading `~/` expandable."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def _remove_stale_control_dirs(age: float = 120.0) -> None:
    """Empty control dirs left by killed deploys (their master exits after ControlPersist)."""
    import time

    for d in Path(tempfile.gettempdir()).glob("edgelite-ssh-*"):
        try:
            if time.time() - d.stat().st_mtime > age and not any(d.iterdir()):
                d.rmdir()
        except OSError:
            pass


class Remote:
    """Commands and file copies to one device over a shared OpenSSH connection.

    Use as a context manager: the control connection is closed at the end (and a killed deploy's
    master exits by itself after ControlPersist).
    """

    def __init__(self, target: Target, *, identity: str | None = None, strict_host_key: bool = False,
                 known_hosts: str | None = None, connect_timeout: int = 20, verbose: bool = False):
        self.target = target
        self.verbose = verbose
        if identity and not Path(identity).expanduser().is_file():
            raise DeployError(f"--identity {identity}: no such key file", EXIT_USAGE)
        if shutil.which("ssh") is None:
            raise DeployError("no `ssh` on this machine; install OpenSSH's client (apt install openssh-client)",
                              EXIT_USAGE)
        _remove_stale_control_dirs()
        # one control connection per Remote, never shared between runs: a reused master would skip
        # authentication with another --identity
        self._ctl_dir = tempfile.mkdtemp(prefix="edgelite-ssh-")
        opts = [
            "-o", "BatchMode=yes",  # keys only: fail instead of asking for a password
            "-o", f"StrictHostKeyChecking={'yes' if strict_host_key else 'accept-new'}",
            "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={self._ctl_dir}/%C", "-o", "ControlPersist=30",
            "-o", "LogLevel=ERROR",
        ]
        if identity:
            opts += ["-i", str(Path(identity).expanduser()), "-o", "IdentitiesOnly=yes"]
        if known_hosts:
            opts += ["-o", f"UserKnownHostsFile={Path(known_hosts).expanduser()}"]
        self._common_opts = opts
        self.ssh_opts = opts + (["-p", str(target.port)] if target.port else [])

    # ------------------------------------------------------------------ commands
    def ssh_argv(self, command: str) -> list[str]:
        return ["ssh", *self.ssh_opts, self.target.destination, command]

    def run(self, command: str, *, input: str | None = None, timeout: float | None = 600, check: bool = True,
            capture: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command on the device. Connection failures become a DeployError that says what to do."""
        if self.verbose:
            print(f"  $ ssh {self.target} {command}", flush=True)
        try:
            r = subprocess.run(self.ssh_argv(command), input=input, text=True, timeout=timeout,
                               stdout=subprocess.PIPE if capture else None,
                               stderr=subprocess.PIPE if capture else None,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DeployError(f"{self.target}: `{command[:60]}` did not finish within {timeout:.0f} s",
                              EXIT_CONNECT) from None
        if r.returncode == 255:
            raise DeployError(self._explain_ssh_failure(r.stderr or ""), EXIT_CONNECT)
        if check and r.returncode != 0:
            lines = [ln for ln in ((r.stderr or "") + "\n" + (r.stdout or "")).splitlines() if ln.strip()]
            raise DeployError(f"`{command[:90]}` failed on {self.target} (exit {r.returncode}): "
                              f"{' / '.join(lines[-3:]) or 'no output'}", EXIT_REMOTE)
        return r

    def stream(self, command: str, *, timeout: float | None = None, on_line=None) -> tuple[int, list[str]]:
        """Run a command and hand each output line to `on_line` as it arrives; (exit code, lines)."""
        p = subprocess.Popen(self.ssh_argv(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
        lines = []
        assert p.stdout is not None
        for line in p.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if on_line:
                on_line(line)
        code = p.wait(timeout=timeout)
        if code == 255:
            raise DeployError(self._explain_ssh_failure("\n".join(lines[-5:])), EXIT_CONNECT)
        return code, lines

    def _explain_ssh_failure(self, stderr: str) -> str:
        text = " ".join(stderr.strip().splitlines()[-3:]) or "ssh exited with 255"
        where = f"cannot reach {self.target} over SSH"
        if "Permission denied" in text:
            return (f"{where}: the key was refused ({text}); pass --identity KEY for a key the device accepts "
                    f"(ssh-copy-id {self.target.destination} installs yours)")
        if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
            return (f"{where}: its host key is unknown or changed ({text}); with --strict-host-key add it to "
                    "known_hosts first (ssh-keyscan), or check that the device is really the one you meant")
        if "Connection refused" in text or "timed out" in text or "No route" in text or "resolve" in text:
            return f"{where}: {text}; is the device on and is sshd running?"
        return f"{where}: {text}"

    # ------------------------------------------------------------------ files
    def has_rsync_locally(self) -> bool:
        return shutil.which("rsync") is not None

    def push(self, local: Sequence[str | os.PathLike], remote_dir: str, *, transfer: str = "rsync",
             checksum: bool = False, delete: bool = False, contents: bool = False) -> None:
        """Copy files/dirs into `remote_dir` (an absolute device path). `contents`: copy a dir's contents.

        rsync sends only what changed (and with `checksum` compares content, not size+mtime); scp
        (the fallback for a device without rsync) sends everything.
        """
        srcs = [str(p) for p in local]
        if transfer == "rsync":
            if contents:
                srcs = [s.rstrip("/") + "/" for s in srcs]
            cmd = ["rsync", "-rlpt", "--partial", "-e", shlex.join(["ssh", *self.ssh_opts])]
            if checksum:
                cmd.append("--checksum")
            if delete:
                cmd.append("--delete")
            host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
            dest = f"{self.target.user + '@' if self.target.user else ''}{host}:{remote_dir.rstrip('/')}/"
            cmd += [*srcs, dest]
        else:
            self.run(f"mkdir -p {rq(remote_dir)}")
            if contents:
                srcs = [str(p) for s in srcs for p in sorted(Path(s).iterdir())]
            port = ["-P", str(self.target.port)] if self.target.port else []
            host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
            dest = f"{self.target.user + '@' if self.target.user else ''}{host}:{remote_dir.rstrip('/')}/"
            cmd = ["scp", "-q", "-r", "-p", *port, *self._common_opts, *srcs, dest]
        if self.verbose:
            print("  $ " + shlex.join(cmd), flush=True)
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            text = " ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
            if r.returncode == 255 or "connection" in text.lower():
                raise DeployError(self._explain_ssh_failure(text), EXIT_CONNECT)
            raise DeployError(f"copying to {self.target}:{remote_dir} with {transfer} failed: {text}", EXIT_CONNECT)

    def close(self) -> None:
        subprocess.run(["ssh", *self.ssh_opts, "-O", "exit", self.target.destination],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        shutil.rmtree(self._ctl_dir, ignore_errors=True)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
