"""The deploy test rig: a real OpenSSH server on 127.0.0.1, a throwaway user, a real bundle and video.

* `sshd` starts `/usr/sbin/sshd -D -p PORT -f CONFIG` with a temporary host key, for a user created with
  `useradd` (we are root in CI) whose authorized_keys holds a temporary client key. The "device" is
  this x86_64 machine seen through SSH: no systemd here, so deploys use the agent's supervisor.
* The device wheels come from one cached wheelhouse (~/.cache/edgelite/wheelhouse, downloaded once)
  and every deploy is `--offline`: no test reaches a package index after the first run.
* `tiny_bundle` / `video` are built once per session by tests/deploy/bundlekit.py (TensorFlow in a
  subprocess); `broken_bundle` is a manifest-valid bundle whose model file is not a model.

Everything here is real processes; teardown stops what the user started (by pid) and removes the user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.sshkit import stop_processes_of, users

from .rig import free_port, write_broken_copy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SSHD = "/usr/sbin/sshd"


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")



class Device:
    """A deploy target: the sshd's address, the client key, and the CLI around `edgelite deploy`."""

    def __init__(self, user: str, port: int, key: Path, known_hosts: Path, home: Path):
        self.user, self.port, self.key, self.known_hosts, self.home = user, port, key, known_hosts, home
        self.uid = pwd.getpwnam(user).pw_uid

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def conn_args(self, directory: str = "~/edgelite") -> list[str]:
        return ["--host", self.host, "--identity", str(self.key), "--known-hosts", str(self.known_hosts),
                "--dir", directory]

    def cli(self, *args: str, timeout: float = 300, directory: str = "~/edgelite",
            environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`python -m edgelite deploy ARGS` as a real process (`environ` added); stdout+stderr in .stdout."""
        cmd = [sys.executable, "-m", "edgelite", "deploy", *args, *self.conn_args(directory)]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              cwd=ROOT, env={**_env(), **(environ or {})})

    def popen(self, *args: str, directory: str = "~/edgelite") -> subprocess.Popen:
        cmd = [sys.executable, "-u", "-m", "edgelite", "deploy", *args, *self.conn_args(directory)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                env=_env(), bufsize=1)

    def ssh(self, command: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["ssh", "-p", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
               f"{self.user}@127.0.0.1", command]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check, input=input)

    def stop_everything(self) -> None:
        """End every process the device user runs (services started by deploys), by pid."""
        stop_processes_of(self.uid)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1 for a throwaway user; yields a Device."""
    if os.geteuid() != 0:
        pytest.skip("the deploy rig creates a user and runs sshd: needs root")
    for tool in (SSHD, shutil.which("ssh"), shutil.which("rsync"), shutil.which("useradd")):
        if not tool or not Path(tool).exists():
            pytest.skip(f"needs openssh-server, openssh-client, rsync, useradd (missing {tool}); make setup installs them")
    d = tmp_path_factory.mktemp("sshd")
    os.chmod(d, 0o755)
    user = f"eldeploy{os.getpid() % 100000}"
    users("useradd", "-m", "-s", "/bin/sh", user)
    device = None
    proc = None
    try:
        users("usermod", "-p", "*", user)  # no password, but not a locked account
        pw = pwd.getpwnam(user)
        home = Path(pw.pw_dir)
        key = d / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgelite-test", "-f", str(key)], check=True)
        hostkey = d / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        for p in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        port = free_port()
        config = d / "sshd_config"
        config.write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {hostkey}
PidFile {d}/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
AllowUsers {user}
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel VERBOSE
""")
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        log = open(d / "sshd.log", "w")
        proc = subprocess.Popen([SSHD, "-D", "-e", "-p", str(port), "-f", str(config)], stdout=log, stderr=log)
        _wait_port(port)
        device = Device(user, port, key, d / "known_hosts", home)
        r = device.ssh("echo ok")
        assert r.stdout.strip() == "ok", r.stderr
        yield device
    finally:
        if device is not None:
            device.stop_everything()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        users("userdel", "-r", "-f", user, check=False)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bundle_built, tmp_path_factory) -> Path:
    return Path(shutil.copytree(tiny_bundle_built, tmp_path_factory.mktemp("bundles") / "tiny"))


def _copy_of(bundle: Path, tmp_path_factory, name: str) -> Path:
    out = tmp_path_factory.mktemp("bundles") / name
    shutil.copytree(bundle, out)
    return out


@pytest.fixture(scope="session")
def bundle_v2(tiny_bundle, tmp_path_factory) -> Path:
    """The same model, another bundle (the manifest differs: another bundle id)."""
    from tests.deploy.bundlekit import another_version

    return another_version(tiny_bundle, tmp_path_factory.mktemp("bundles") / "tiny-v2", 2)


@pytest.fixture(scope="session")
def broken_bundle(tiny_bundle, tmp_path_factory) -> Path:
    """A bundle whose manifest is right about its file (sha256 and all) but the file is not a model."""
    return write_broken_copy(tiny_bundle, tmp_path_factory.mktemp("bundles") / "broken")


@pytest.fixture(scope="session")
def corrupt_bundle(tiny_bundle, tmp_path_factory) -> Path:
    """A bundle with one flipped byte in its model: the manifest's sha256 no longer matches."""
    out = _copy_of(tiny_bundle, tmp_path_factory, "corrupt")
    p = out / "model_int8.tflite"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Path:
    from .bundlekit import write_video

    return write_video(tmp_path_factory.mktemp("media") / "colours.avi")


@pytest.fixture(scope="session")
def wheel() -> Path:
    """The edgelite wheel, built once: every deploy of the session installs the same bytes."""
    from edgelite.deploy.package import build_wheel

    return build_wheel()


@pytest.fixture(scope="session")
def wheel_b(wheel, tmp_path_factory) -> Path:
    """The same wheel re-zipped (same files, other bytes): a different venv on the device, like a rebuild."""
    out = tmp_path_factory.mktemp("wheel-b") / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            info.date_time = (2001, 2, 3, 4, 5, 6)
            dst.writestr(info, src.read(info.filename))
    return out


@pytest.fixture(scope="session")
def wheelhouse(sshd) -> Path:
    """The device's dependency wheels, downloaded once into ~/.cache/edgelite/wheelhouse (the deploy uses it)."""
    from edgelite.deploy import package
    from edgelite.deploy.preflight import Facts

    from .rig import agent_facts

    facts = Facts(agent_facts())  # the test device is this machine
    return package.wheelhouse(facts.platform_tag(), facts.python_tag(), constraints=package.constraints_file(),
                              log=lambda *_: None)
