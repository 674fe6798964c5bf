"""The systemd unit the service runs as: its text (sandboxed), the quoting of the deploy folder in it, and
`systemd-analyze verify` of the result.

The sandbox is what `systemd-analyze security` rates (SECURITY.md, "The service's sandbox"): the camera
loop reads its camera, serves its preview, publishes MQTT, talks to systemd (sd_notify, watchdog) and
writes into its deploy folder; everything else on the device is out of its reach.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from edgelite.deploy.agent import supervisor as sv
from edgelite.deploy.agent.layout import AgentError, Layout
from edgelite.errors import EXIT_USAGE
from edgelite.remote.layout import RELEASE_ENV

UNIT_TEMPLATE = """[Unit]
Description=edgelite camera classifier ({root_text})
Documentation=https://pypi.org/project/edgelite/
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec={limit_interval}
StartLimitBurst={limit_burst}

[Service]
Type=notify
NotifyAccess=main
{user_lines}# WorkingDirectory= takes the rest of its line as the path (no quotes): ending it in /current keeps a
# folder name that ends in a space or a backslash whole. ExecStart='s program may hold no quote,
# backslash or tab, so it is /bin/sh and the deploy folder is its argument (double-quoted, C escapes)
WorkingDirectory={workdir}
# the camera URL and the preview token (the release's 0600 env file), never on the command line; like
# WorkingDirectory=, the rest of the line is the path
EnvironmentFile=-{env_file}
ExecStart={exec_start}
Restart=on-failure
RestartSec={restart_sec}
WatchdogSec={watchdog}
TimeoutStartSec={timeout_start}
TimeoutStopSec={timeout_stop}
StandardOutput=journal
StandardError=journal
SyslogIdentifier={unit}
NoNewPrivileges=yes
# what the service writes (saved frames, its state) is its user's alone
UMask=0077
{sandbox}
[Install]
WantedBy={wanted_by}
"""

#: the sandbox every systemd can apply, a `systemctl --user` manager included: seccomp filters only (with
#: NoNewPrivileges=yes an unprivileged manager installs them too)
SECCOMP = """# the sandbox (SECURITY.md): system calls of an ordinary service, no JIT memory, no namespaces
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
# sd_notify and the watchdog (AF_UNIX), the preview and MQTT (AF_INET/6), and udev's device monitor that
# libusb (Coral USB) and libcamera (picamera2) open at start (AF_NETLINK)
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
"""

#: what only the system manager can do (mount namespaces, cgroup device rules, capability bounds)
SYSTEM = """# the file system is read-only but for the deploy folder (saved frames, state); other homes are read-only
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={rw}
PrivateTmp=yes
PrivateMounts=yes
PrivateUsers=yes
ProtectProc=invisible
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RemoveIPC=yes
CapabilityBoundingSet=
# devices: /dev/null and friends, then the cameras and accelerators (the video and plugdev groups give
# the permission, these rules the reach): V4L2 /dev/video* and /dev/v4l-subdev*; picamera2/libcamera's
# /dev/media*, /dev/dma_heap/* and (older Pi firmware) /dev/vchiq; Coral USB /dev/bus/usb/*, Coral PCIe apex
DevicePolicy=closed
DeviceAllow=char-video4linux rw
DeviceAllow=char-media rw
DeviceAllow=char-dma_heap rw
DeviceAllow=char-vchiq rw
DeviceAllow=char-usb_device rw
DeviceAllow=char-apex rw
"""


def render_unit(root: str, user: str | None, unit: str = "edgelite") -> str:
    """The systemd unit: Type=notify + WatchdogSec (edgelite run speaks sd_notify), Restart=on-failure,
    the deploy user (never root; `user=None` for a `systemctl --user` unit), journald logging, and the
    sandbox (all of it for a system unit; its seccomp part for a --user unit, whose manager cannot
    mount, drop capabilities or filter devices).

    >>> "ProtectSystem=strict" in render_unit("/home/pi/edgelite", "pi"), "ProtectSystem" in render_unit("/x", None)
    (True, False)
    """
    check_unit_path(root)
    user_lines = f"User={user}\nSupplementaryGroups=video plugdev\n" if user else ""
    sandbox = SECCOMP + (SYSTEM.format(rw=unit_quote(root)) if user else "")
    return UNIT_TEMPLATE.format(root_text=_specifiers(root), workdir=_specifiers(f"{root}/current"),
                                env_file=_specifiers(f"{root}/current/{RELEASE_ENV}"),
                                exec_start=f"/bin/sh {exec_quote(f'{root}/current/run')}", user_lines=user_lines, unit=unit,
                                restart_sec=int(sv.RESTART_SEC), watchdog=sv.WATCHDOG_SEC,
                                timeout_start=sv.TIMEOUT_START_SEC, timeout_stop=sv.TIMEOUT_STOP_SEC,
                                limit_interval=int(sv.START_LIMIT_INTERVAL), limit_burst=sv.START_LIMIT_BURST,
                                sandbox=sandbox, wanted_by="multi-user.target" if user else "default.target")


def check_unit_path(root: str) -> None:
    """Refuse a deploy folder no unit file can name: a line break ends a unit-file line, and other control
    characters (a tab is fine) or text that is not UTF-8 are not paths systemd takes."""
    bad = [c for c in root if (ord(c) < 32 and c != "\t") or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF]
    if bad:
        raise AgentError(f"the deploy folder {root!r} holds {bad[0]!r}, which a systemd unit cannot name: "
                         "pass a --dir without line breaks or control characters", EXIT_USAGE)


def _specifiers(text: str) -> str:
    """`text` with systemd's specifier character escaped: `%` is `%%` in a unit file."""
    return text.replace("%", "%%")


def unit_quote(path: str) -> str:
    """A path as one word of a unit's path list (ReadWritePaths=): always double-quoted, `\\` and `"`
    backslash-escaped and `%` doubled; anything else (a tab, `'`, `$`, `;`, `:`, unicode) stays as it is,
    which a quoted word keeps whether or not the setting also reads C escapes.

    >>> unit_quote("/home/pi/edgelite"), unit_quote('/home/pi/my "100%"')
    ('"/home/pi/edgelite"', '"/home/pi/my \\\\"100%%\\\\""')
    """
    check_unit_path(path)
    return '"' + _specifiers(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_quote(arg: str) -> str:
    """An argument of ExecStart=: `unit_quote` and `$` doubled (systemd puts variables into arguments).

    >>> exec_quote("/home/pi/$HOME 100%/current/run")
    '"/home/pi/$$HOME 100%%/current/run"'
    """
    return unit_quote(arg).replace("$", "$$")


def verify_unit(path: Path) -> str | None:
    """`systemd-analyze verify` findings, or None when it is clean or not installed."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        return None
    r = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    return _findings(path, r.returncode, r.stdout + r.stderr, r.stderr)


def _findings(path: Path, code: int, output: str, stderr: str) -> str | None:
    # it also complains about unrelated units on the system; keep the lines about this file
    lines = [ln for ln in output.splitlines() if path.name in ln or str(path) in ln]
    return "\n".join(lines) or (None if code == 0 else (stderr.strip() or f"exit {code}"))


class UnitCheck:
    """`systemd-analyze verify` of the unit as it will be installed (needs `current/run` to exist), started in
    the background: on a Pi (and more so under emulation) it takes seconds, and it only reports, so it runs
    while the service restarts and `result()` collects it afterwards."""

    def __init__(self, lay: Layout, svc: dict):
        self.proc = None
        tool = shutil.which("systemd-analyze")
        if not tool:
            return
        self.tmp = tempfile.mkdtemp(prefix="edgelite-unit-")
        self.named = Path(self.tmp) / f"{svc.get('unit', 'edgelite')}.service"
        shutil.copyfile(lay.unit_file, self.named)
        self.proc = subprocess.Popen([tool, "verify", str(self.named)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def result(self) -> dict:
        if self.proc is None:
            return {"verified": False, "findings": None}
        try:
            out, err = self.proc.communicate(timeout=60)
            return {"verified": True, "findings": _findings(self.named, self.proc.returncode, out + err, err)}
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return {"verified": False, "findings": "systemd-analyze verify took over 60 s"}
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
