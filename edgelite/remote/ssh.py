"""SSH and file transfer to a device: OpenSSH's `ssh`, `rsync` (or `scp` when the device has no rsync).

The only module in edgelite that starts ssh, rsync or scp. Key authentication only (BatchMode=yes:
never a password prompt). One host-key policy: StrictHostKeyChecking=accept-new by default (remember
a new device, refuse a changed key) or `yes` with --strict-host-key (the key must already be in
known_hosts); never `no`. One control connection (ControlMaster) is shared by every command of a
session.

    >>> with Remote(parse_target("pi@raspberrypi.local:2222")) as r:       # doctest: +SKIP
    ...     print(r.run("uname -m").stdout)
    aarch64
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgelite.remote.errors import EXIT_CONNECT, EXIT_REMOTE, EXIT_USAGE, RemoteError
from edgelite.remote.pulled import Caps, Listing, Tally, extract, plain_files
from edgelite.remote.target import Target, parse_target

__all__ = ["Remote", "RemoteError", "Target", "parse_target", "rq", "host_key_policy"]


def rq(path: str) -> str:
    """Quote a device path for the remote shell, keeping a leading `~/` expandable.

    >>> rq("~/edgelite"), rq("~/my dir"), rq("/srv/my bundle")
    ('~/edgelite', "~/'my dir'", "'/srv/my bundle'")
    """
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def python_file_command(path: str, *, missing: int, no_python: int) -> str:
    """The device command line that runs the Python file `path` (a zipapp; `~/` allowed) with the device's
    python3, its stdin passed on; exit `missing` when there is no such file, `no_python` without python3.

    >>> python_file_command("~/edgelite/agent.pyz", missing=127, no_python=126)
    'test -f ~/edgelite/agent.pyz || exit 127; command -v python3 >/dev/null || exit 126; exec python3 ~/edgelite/agent.pyz'
    """
    q = rq(path)
    return f"test -f {q} || exit {int(missing)}; command -v python3 >/dev/null || exit {int(no_python)}; exec python3 {q}"


def host_key_policy(strict_host_key: bool, ssh_options: Iterable[str]) -> tuple[str, list[str]]:
    """(StrictHostKeyChecking value, the other -o options). A StrictHostKeyChecking among `ssh_options`
    may make the policy stricter (yes / ask) but never turn checking off (no / off: a usage error).

    >>> host_key_policy(False, ["Port=2222", "StrictHostKeyChecking=yes"])
    ('yes', ['Port=2222'])
    """
    strict, rest = strict_host_key, []
    for opt in ssh_options:
        key, _, value = opt.replace("=", " ", 1).partition(" ")
        if key.strip().lower() in ("userknownhostsfile", "globalknownhostsfile"):
            for f in value.split():
                forgetful_known_hosts(f, f"--ssh-option {opt}")
        if key.strip().lower() != "stricthostkeychecking":
            rest.append(opt)
            continue
        value = value.strip().lower()
        if value in ("yes", "ask"):
            strict = True
        elif value != "accept-new":
            raise RemoteError(f"--ssh-option {opt}: edgelite never turns host-key checking off; add the device's "
                              "key to a file with ssh-keyscan and pass --known-hosts FILE (or keep the default, "
                              "accept-new)", EXIT_USAGE)
    return ("yes" if strict else "accept-new"), rest


def policy_options(strict_host_key: bool, known_hosts: str | None = None, *, batch: bool = True) -> list[str]:
    """The `ssh -o` options of the one host-key policy (keys only, accept-new or yes, which known_hosts):
    `Remote` starts ssh with them, `edgelite fleet` hands them to Ansible's ssh.

    >>> policy_options(False)
    ['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new']
    """
    opts = ["-o", "BatchMode=yes"] if batch else []  # keys only: fail instead of asking for a password
    opts += ["-o", f"StrictHostKeyChecking={'yes' if strict_host_key else 'accept-new'}"]
    if known_hosts:
        forgetful_known_hosts(str(known_hosts), f"--known-hosts {known_hosts}")
        opts += ["-o", f"UserKnownHostsFile={Path(known_hosts).expanduser()}"]
    return opts


def forgetful_known_hosts(path: str, given: str) -> None:
    """Refuse a known_hosts that remembers nothing (/dev/null, `none`): with accept-new every key, a changed
    one included, would be accepted each time, which is host-key checking turned off.

    >>> forgetful_known_hosts("~/.ssh/known_hosts", "--known-hosts")
    >>> forgetful_known_hosts("/dev/null", "--known-hosts /dev/null")
    Traceback (most recent call last):
    ...
    edgelite.remote.errors.RemoteError: --known-hosts /dev/null: a known_hosts file that remembers nothing turns host-key checking off, which edgelite never does; pass a real file (ssh-keyscan HOST >> FILE) or keep the default
    """
    p = path.strip().strip('"')
    if p.lower() == "none" or (p and os.path.realpath(os.path.expanduser(p)) == os.devnull):
        raise RemoteError(f"{given}: a known_hosts file that remembers nothing turns host-key checking off, which "
                          "edgelite never does; pass a real file (ssh-keyscan HOST >> FILE) or keep the default",
                          EXIT_USAGE)


def explain_ssh_failure(target: object, stderr: str) -> str:
    """ssh's last words (exit 255) as one line that says what to do; `edgelite fleet` explains Ansible's
    unreachable hosts with it too.

    >>> explain_ssh_failure("pi@cam1", "Host key verification failed.").split(";")[1].strip()[:40]
    'with --strict-host-key add it to known_h'
    """
    text = " ".join(stderr.strip().splitlines()[-3:]) or "ssh exited with 255"
    where = f"cannot reach {target} over SSH"
    if "Permission denied" in text:
        dest = getattr(target, "destination", target)
        return (f"{where}: the key was refused ({text}); pass --identity KEY for a key the device accepts "
                f"(ssh-copy-id {dest} installs yours)")
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (f"{where}: its host key is unknown or changed ({text}); with --strict-host-key add it to "
                "known_hosts first (ssh-keyscan), or check that the device is really the one you meant")
    if "Connection refused" in text or "timed out" in text or "No route" in text or "resolve" in text:
        return f"{where}: {text}; is the device on and is sshd running?"
    return f"{where}: {text}"


def _remove_stale_control_dirs(age: float = 120.0) -> None:
    """Empty control dirs left by killed sessions (their master exits after ControlPersist)."""
    for d in Path(tempfile.gettempdir()).glob("edgelite-ssh-*"):
        try:
            if time.time() - d.stat().st_mtime > age and not any(d.iterdir()):
                d.rmdir()
        except OSError:
            pass


def _skip_caches(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
    name = Path(ti.name).name
    return None if name == "__pycache__" or name.endswith(".pyc") else ti


class Remote:
    """Commands and file copies to one device over a shared OpenSSH connection.

    `ssh_options` are extra `ssh -o` options (`Port=2222`, `IdentityFile=...`); they come after the
    host-key policy and BatchMode, which they cannot override, and before the other defaults, which they
    can (ssh keeps the first value it is given). Use as a context manager: the control connection is
    closed at the end (and a killed session's master exits by itself after ControlPersist).
    """

    def __init__(self, target: Target, *, identity: str | None = None, strict_host_key: bool = False,
                 known_hosts: str | None = None, ssh_options: Sequence[str] = (), connect_timeout: int = 20,
                 verbose: bool = False):
        self.target = target
        self.verbose = verbose
        policy, extra = host_key_policy(strict_host_key, ssh_options)
        if identity and not Path(identity).expanduser().is_file():
            raise RemoteError(f"--identity {identity}: no such key file", EXIT_USAGE)
        if shutil.which("ssh") is None:
            raise RemoteError("no `ssh` on this machine; install OpenSSH's client (apt install openssh-client)",
                              EXIT_USAGE)
        _remove_stale_control_dirs()
        # one control connection per Remote, never shared between runs: a reused master would skip
        # authentication with another --identity
        self._ctl_dir = tempfile.mkdtemp(prefix="edgelite-ssh-")
        opts = policy_options(policy == "yes", known_hosts)
        if identity:
            opts += ["-i", str(Path(identity).expanduser()), "-o", "IdentitiesOnly=yes"]
        for opt in extra:
            opts += ["-o", opt]
        opts += [
            "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={self._ctl_dir}/%C", "-o", "ControlPersist=30",
            "-o", "LogLevel=ERROR",
        ]
        self._common_opts = opts
        self.ssh_opts = opts + (["-p", str(target.port)] if target.port else [])

    # ------------------------------------------------------------------ commands
    def ssh_argv(self, command: str) -> list[str]:
        """The argv that runs `command` (one shell string) on the device."""
        return ["ssh", *self.ssh_opts, self.target.destination, command]

    def run(self, command: str, *, input: str | None = None, timeout: float | None = 600, check: bool = True,
            capture: bool = True, capture_stderr: bool | None = None) -> subprocess.CompletedProcess:
        """Run a shell command on the device. A connection failure is a RemoteError (EXIT_CONNECT) that says
        what to do; with `check`, so is a non-zero exit (EXIT_REMOTE). `capture_stderr=False` lets the
        command's messages reach this terminal while stdout is captured."""
        if capture_stderr is None:
            capture_stderr = capture
        if self.verbose:
            print(f"  $ ssh {self.target} {command}", flush=True)
        try:
            r = subprocess.run(self.ssh_argv(command), input=input, text=True, timeout=timeout,
                               stdout=subprocess.PIPE if capture else None,
                               stderr=subprocess.PIPE if capture_stderr else None,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.target}: `{command[:60]}` did not finish within {timeout:.0f} s",
                              EXIT_CONNECT) from None
        if r.returncode == 255:
            raise RemoteError(self._explain_ssh_failure(r.stderr or ""), EXIT_CONNECT)
        if check and r.returncode != 0:
            lines = [ln for ln in ((r.stderr or "") + "\n" + (r.stdout or "")).splitlines() if ln.strip()]
            raise RemoteError(f"`{command[:90]}` failed on {self.target} (exit {r.returncode}): "
                              f"{' / '.join(lines[-3:]) or 'no output'}", EXIT_REMOTE)
        return r

    def stream(self, command: str, *, input: str | None = None, timeout: float | None = None,
               on_line=None) -> tuple[int, list[str]]:
        """Run a command (its stdin `input`) and hand each output line to `on_line` as it arrives; (exit code, lines)."""
        p = subprocess.Popen(self.ssh_argv(command), stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        if input is not None and p.stdin:
            p.stdin.write(input)
            p.stdin.close()
        lines = []
        for line in p.stdout or ():
            line = line.rstrip("\n")
            lines.append(line)
            if on_line:
                on_line(line)
        code = p.wait(timeout=timeout)
        if code == 255:
            raise RemoteError(self._explain_ssh_failure("\n".join(lines[-5:])), EXIT_CONNECT)
        return code, lines

    def _explain_ssh_failure(self, stderr: str) -> str:
        return explain_ssh_failure(self.target, stderr)

    # ------------------------------------------------------------------ files
    def has_rsync_locally(self) -> bool:
        return shutil.which("rsync") is not None

    def _scp_destination(self, remote_dir: str) -> str:
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        return f"{self.target.user + '@' if self.target.user else ''}{host}:{remote_dir.rstrip('/')}/"

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
            # --protect-args: the remote path goes to rsync itself, never through the device's shell
            # (spaces, quotes, `;` in --dir); `--` ends the options before the local paths
            cmd = ["rsync", "-rlpt", "--partial", "--protect-args", "-e", shlex.join(["ssh", *self.ssh_opts])]
            if checksum:
                cmd.append("--checksum")
            if delete:
                cmd.append("--delete")
            cmd += ["--", *srcs, self._scp_destination(remote_dir)]
        else:
            self.run(f"mkdir -p {rq(remote_dir)}")
            if contents:
                srcs = [str(p) for s in srcs for p in sorted(Path(s).iterdir())]
            port = ["-P", str(self.target.port)] if self.target.port else []
            # -s: the SFTP protocol, so the remote path is never parsed by the device's shell
            cmd = ["scp", "-q", "-r", "-p", "-s", *port, *self._common_opts, "--", *srcs,
                   self._scp_destination(remote_dir)]
        self._copy(cmd, f"copying to {self.target}:{remote_dir} with {transfer}")

    def _copy(self, cmd: list[str], what: str) -> str:
        """Run an rsync/scp command; its stdout, or a RemoteError that says what failed."""
        if self.verbose:
            print("  $ " + shlex.join(cmd), flush=True)
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            text = " ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
            if r.returncode == 255 or "connection" in text.lower():
                raise RemoteError(self._explain_ssh_failure(text), EXIT_CONNECT)
            raise RemoteError(f"{what} failed: {text}", EXIT_CONNECT)
        return r.stdout

    def makedirs(self, paths: Sequence[str]) -> None:
        """`mkdir -p` every device path (a leading `~/` is the device user's home)."""
        self.run("mkdir -p -- " + " ".join(rq(p) for p in paths))

    def put(self, local: str | os.PathLike, remote_path: str, *, transfer: str = "rsync") -> None:
        """Copy one local file to the device file `remote_path` (its folder exists), replacing it whole:
        rsync writes a temporary file and renames it; scp (SFTP) writes in place. A leading `~/` is the
        device user's home (both take a relative path from there)."""
        dest = self._scp_destination(remote_path[2:] if remote_path.startswith("~/") else remote_path).rstrip("/")
        if transfer == "rsync":
            cmd = ["rsync", "-lpt", "--protect-args", "-e", shlex.join(["ssh", *self.ssh_opts]), "--", str(local), dest]
        else:
            port = ["-P", str(self.target.port)] if self.target.port else []
            cmd = ["scp", "-q", "-p", "-s", *port, *self._common_opts, "--", str(local), dest]
        self._copy(cmd, f"copying {Path(local).name} to {self.target}:{remote_path} with {transfer}")

    def get(self, remote_dir: str, local_dir: str | os.PathLike, *, transfer: str = "rsync",
            remove_source: bool = False, caps: Caps | None = None, warn=None) -> list[str]:
        """Copy the files under `remote_dir` (an absolute device path) into `local_dir`; hidden files (a
        frame still being written is `.NAME.part`) are left. Returns the relative paths copied.

        `remove_source`: delete each file on the device once it is safely here (rsync's
        --remove-source-files; without rsync, a tar stream and then `rm` of exactly the names received),
        so a device's capped folder has room again and the next pull brings only new files.

        Nothing from a device is trusted: only regular files come here, as 0600 files in 0700 folders (no
        symlinks, devices or setuid bits; rsync without -l/-D and with --chmod, the tar stream through
        tarfile's data filter), and whatever is not a plain file inside `local_dir` afterwards is removed.
        `caps` (edgelite.remote.pulled.Caps) bound each file's size and the pull's count and bytes: at a cap
        the copy is stopped and `warn` (default: stderr) gets one line that says to pull again for the rest.
        """
        local, caps = Path(local_dir), caps or Caps()
        warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        local.mkdir(parents=True, exist_ok=True)
        source = f"{self.target}:{remote_dir}"
        if transfer == "rsync":
            names, oversized, capped = self._download_rsync(remote_dir, local, caps, remove_source)
        else:
            names, oversized, capped = self._download_tar(remote_dir, local, caps)
        names = plain_files(local, names)
        if oversized:
            warn(caps.skipped(source, oversized))
        if capped:
            warn(caps.warning(source, len(names), sum((local / n).stat().st_size for n in names)))
        if transfer != "rsync" and remove_source and names:
            self.run(f"cd {rq(remote_dir)} && xargs -0 rm -f --", input="\0".join(names))
        return names

    def _download_rsync(self, remote_dir: str, local: Path, caps: Caps, remove_source: bool):
        """Two rsyncs: `--list-only`, read up to the caps and stopped there (edgelite.remote.pulled.Listing),
        then a copy of exactly the names listed (--files-from, --max-size). The copy is counted by the sizes
        found here and stopped should a device send more than it listed."""
        base = ["rsync", "--protect-args", "-e", shlex.join(["ssh", *self.ssh_opts])]
        src, size = self._scp_destination(remote_dir), f"--max-size={caps.max_file_bytes}"
        listing = Listing(caps)
        self._rsync_lines([*base, "-r", "--list-only", "--no-h", "--exclude=.*", "--", src], listing.add, remote_dir)
        if not listing.names:
            return [], listing.oversized, listing.capped
        tally = Tally(local, caps)
        with tempfile.NamedTemporaryFile("w", prefix="edgelite-pull-") as files_from:
            files_from.write("\0".join(listing.names))
            files_from.flush()
            # -r -t only: no -l (symlinks are skipped), no -D (devices, fifos), modes forced by --chmod; no
            # --partial: a stopped copy leaves no truncated frame
            cmd = [*base, "-rt", "--perms", "--chmod=D700,F600", size, "--exclude=.*", "--from0",
                   f"--files-from={files_from.name}", "--out-format=%n"]
            cmd += ["--remove-source-files"] if remove_source else []
            stopped = self._rsync_lines([*cmd, "--", src, str(local) + "/"], tally.add, remote_dir)
        return tally.names, listing.oversized + tally.oversized, listing.capped or stopped

    def _rsync_lines(self, cmd: list[str], on_line, remote_dir: str) -> bool:
        """Run rsync, each stdout line (not a folder's) to `on_line`; stop rsync (SIGTERM: it removes its
        unfinished temporary file) once `on_line` says False. True when it was stopped."""
        if self.verbose:
            print("  $ " + shlex.join(cmd), flush=True)
        stopped = False
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf, text=True)
            for line in proc.stdout or ():
                name = line.rstrip("\n")
                if name and not name.endswith("/") and not on_line(name) and not stopped:
                    stopped = True
                    proc.terminate()
            code = proc.wait()
            errf.seek(0)
            err = errf.read().decode(errors="replace")
        if code != 0 and not stopped:
            text = " ".join(err.strip().splitlines()[-3:]) or f"rsync exited with {code}"
            if code == 255 or "connection" in text.lower():
                raise RemoteError(self._explain_ssh_failure(text), EXIT_CONNECT)
            raise RemoteError(f"copying from {self.target}:{remote_dir} with rsync failed: {text}", EXIT_CONNECT)
        return stopped

    def _download_tar(self, remote_dir: str, local: Path, caps: Caps) -> tuple[list[str], list[str], bool]:
        """`tar -cf - .` in `remote_dir` on the device (any tar, BusyBox's too), unpacked here by
        edgelite.remote.pulled.extract; the stream is stopped at a cap."""
        cmd = self.ssh_argv(f"cd {rq(remote_dir)} && tar -cf - .")
        if self.verbose:
            print("  $ " + shlex.join(cmd), flush=True)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            names, oversized, capped = extract(proc.stdout, local, caps)
        except tarfile.TarError as e:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.wait()
            raise RemoteError(f"copying from {self.target}:{remote_dir} failed: {err.strip() or e}", EXIT_REMOTE) from None
        if capped:
            proc.kill()
            proc.wait()
            return names, oversized, True
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        code = proc.wait()
        if code == 255:
            raise RemoteError(self._explain_ssh_failure(err), EXIT_CONNECT)
        if code != 0:
            raise RemoteError(f"copying from {self.target}:{remote_dir} failed: {err.strip() or code}", EXIT_REMOTE)
        return names, oversized, False

    def upload_tar(self, items: Sequence[tuple[str | os.PathLike, str]], remote_dir: str) -> None:
        """Stream local files/dirs to `remote_dir`/<arcname> as one uncompressed tar over this connection
        (needs only `tar` on the device; Python caches are left out). `remote_dir` must exist."""
        if not items:
            return
        cmd = self.ssh_argv(f"tar -xf - -C {rq(remote_dir)}")
        if self.verbose:
            print(f"  $ tar -cf - ... | ssh {self.target} tar -xf - -C {rq(remote_dir)}", flush=True)
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with tarfile.open(fileobj=proc.stdin, mode="w|") as tar:
                for local, arcname in items:
                    tar.add(str(local), arcname=arcname, filter=_skip_caches)
        except BrokenPipeError:
            pass  # the far end stopped reading: its exit code and message say why
        finally:
            if proc.stdin:
                proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        code = proc.wait()
        if code == 255:
            raise RemoteError(self._explain_ssh_failure(err), EXIT_CONNECT)
        if code != 0:
            last = (err.strip().splitlines() or [f"tar exited with {code}"])[-1]
            raise RemoteError(f"copying to {self.target}:{remote_dir} failed: {last}", EXIT_REMOTE)

    def close(self) -> None:
        subprocess.run(["ssh", *self.ssh_opts, "-O", "exit", self.target.destination],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        shutil.rmtree(self._ctl_dir, ignore_errors=True)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

