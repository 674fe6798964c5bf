"""A fleet of real "devices" on this machine: each its own user (useradd) and its own sshd on 127.0.0.1.

Used by tests/fleet (session fixtures) and by benchmarks/fleet_rollout.py. Every device is this x86_64
box seen through SSH under another user, without systemd: the agent's supervisor runs the service.
`Fleet.inventory()` writes an Ansible INI inventory for them (host key pinned in a known_hosts file).
Teardown ends what each device user started (by pid), stops each sshd (by pid) and removes the users.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.sshkit import stop_processes_of, users

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_tools() -> str | None:
    """Why this machine cannot host the fleet (None when it can)."""
    if os.geteuid() != 0:
        return "the fleet rig creates users (useradd) and runs sshd: needs root"
    for tool in (SSHD, shutil.which("ssh"), shutil.which("useradd"), shutil.which("ssh-keygen")):
        if not tool or not Path(tool).exists():
            return f"needs openssh-server, openssh-client and useradd (missing {tool}); make setup installs them"
    return None



@dataclasses.dataclass
class Device:
    name: str  # the inventory name
    user: str
    port: int  # sshd
    http: int  # the service's /healthz on 127.0.0.1
    home: Path
    proc: subprocess.Popen | None = None
    sshd_log: Path | None = None

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.user).pw_uid

    @property
    def root(self) -> Path:
        return self.home / "edgelite"

    def current(self) -> str | None:
        link = self.root / "current"
        return os.readlink(link).split("/")[-1] if link.is_symlink() else None

    def release(self, rid: str) -> dict:
        return json.loads((self.root / "releases" / rid / "release.json").read_text())

    def service_started(self) -> tuple[int | None, float | None]:
        """(pid, start time in clock ticks since boot) of the service process the supervisor runs."""
        state = json.loads((self.root / "run" / "state.json").read_text())
        pid = state.get("pid")
        try:
            return pid, float(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, TypeError):
            return pid, None

    def sessions(self) -> int:
        """SSH sessions (one per command or file transfer, each a round trip) its sshd has opened so far."""
        log = self.sshd_log.read_text(errors="replace") if self.sshd_log else ""
        return log.count("server_input_channel_open: ctype session ")

    def stop_everything(self) -> None:
        """End every process the device user runs (services started by deploys), by pid."""
        stop_processes_of(self.uid)


class Fleet:
    """N devices with one client key; `inventory()` writes hosts.ini, `stop()` undoes everything."""

    def __init__(self, workdir: Path, n: int, prefix: str = "elfl"):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.key = self.dir / "id_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.devices: list[Device] = []
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgelite-fleet", "-f", str(self.key)],
                       check=True)
        hostkey = self.dir / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)], check=True)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        tag = os.getpid() % 10000
        try:
            for i in range(1, n + 1):
                self._start(f"dev{i}", f"{prefix}{tag}d{i}", hostkey)
        except BaseException:
            self.stop()
            raise
        self.known_hosts.write_text("".join(f"[127.0.0.1]:{d.port} {hostkey.with_suffix('.pub').read_text()}"
                                            for d in self.devices))

    def _start(self, name: str, user: str, hostkey: Path) -> None:
        users("userdel", "-r", "-f", user, check=False)  # a leftover of a killed run
        users("useradd", "-m", "-s", "/bin/sh", user)
        users("usermod", "-p", "*", user)  # no password, but not a locked account
        pw = pwd.getpwnam(user)
        home = Path(pw.pw_dir)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        for p in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        device = Device(name, user, free_port(), free_port(), home)
        self.devices.append(device)  # stop() removes it even if its sshd does not come up
        config = self.dir / f"sshd_{name}.conf"
        config.write_text(f"Port {device.port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\n"
                          f"PidFile {self.dir}/sshd_{name}.pid\nAuthorizedKeysFile .ssh/authorized_keys\n"
                          "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                          f"PermitRootLogin no\nUsePAM no\nAllowUsers {user}\nMaxStartups 50:30:100\nMaxSessions 50\n"
                          "LogLevel DEBUG1\n"  # one line per SSH session: Device.sessions() counts them
                          "Subsystem sftp /usr/lib/openssh/sftp-server\n")
        device.sshd_log = self.dir / f"sshd_{name}.log"
        with open(device.sshd_log, "w") as log:
            device.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", device.port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd for {name} did not listen on 127.0.0.1:{device.port}")
            time.sleep(0.05)

    def ssh_args(self) -> str:
        return f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"

    def inventory(self, path: Path, video: Path | str, overrides: dict[str, dict] | None = None,
                  devices: list[Device] | None = None, extra_hosts: list[str] = (), pinned: bool = True) -> Path:
        """An INI inventory of the devices (group `pis`): each its port, user, key, /healthz port and source.
        `pinned`: the host keys come from the fleet's known_hosts (else as a new user's inventory: nothing
        about host keys, so edgelite's policy decides)."""
        lines = ["[pis]"]
        for d in devices or self.devices:
            settings = {"ansible_host": "127.0.0.1", "ansible_port": d.port, "ansible_user": d.user,
                        "edgelite_http": f"127.0.0.1:{d.http}", "edgelite_source": str(video),
                        **(overrides or {}).get(d.name, {})}
            lines.append(d.name + "".join(f" {k}={v}" for k, v in settings.items()))
        lines += list(extra_hosts)
        lines += ["", "[pis:vars]", f"ansible_ssh_private_key_file={self.key}",
                  f"ansible_ssh_common_args='{self.ssh_args() if pinned else '-o IdentitiesOnly=yes'}'",
                  "edgelite_health_timeout=60",
                  "edgelite_print_every=5"]
        path.write_text("\n".join(lines) + "\n")
        return path

    def stop(self) -> None:
        for d in self.devices:
            try:
                d.stop_everything()
            except KeyError:
                pass
            if d.proc is not None:
                d.proc.terminate()
                try:
                    d.proc.wait(10)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
            users("userdel", "-r", "-f", d.user, check=False)
        self.devices = []
