"""Preflight: what the device is, and whether edgelite can run there — before anything but the agent is copied.

The device agent answers a `facts` request (`edgelite.deploy.agent.facts`: flat `key: "value"` strings);
`Facts` reads them, `assess` turns facts into problems (a clear stop) and warnings, and `report` prints
it. The three are pure functions, so the refusals are tested on the agent's real answer.

    >>> facts = Facts({"uname_m": "armv7l", "long_bit": "32", "python": "/usr/bin/python3",
    ...                "python_version": "3.11.2", "python_bits": "32", "probe_end": "1"})
    >>> [p.split(":")[0] for p in assess(facts, source="picamera2").problems]
    ['32-bit OS']
"""

from __future__ import annotations

import dataclasses

from edgelite.device.source_kind import IMX500, camera_device, source_kind
from edgelite.remote.agent import MIN_PYTHON

# MIN_PYTHON: the oldest Python edgelite supports (pyproject's requires-python), the agent's floor too
#: the newest Python LiteRT has wheels for
MAX_TESTED_PYTHON = (3, 13)
#: the oldest glibc the device wheels are built for (LiteRT: manylinux_2_27)
MIN_GLIBC = (2, 27)
ARCHES = {"aarch64": "aarch64", "arm64": "aarch64", "x86_64": "x86_64", "amd64": "x86_64"}
BITS32 = {"armv6l", "armv7l", "armv8l", "armhf", "armel", "i386", "i686", "x86"}
# free space: `edgelite.deploy.space` measures what a deploy writes once its wheels are known (step 2)

@dataclasses.dataclass
class Facts:
    """The agent's `facts` (strings; a missing key is "")."""

    raw: dict[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.raw.get(key, default)

    @property
    def complete(self) -> bool:
        return self.get("probe_end") == "1"

    @property
    def machine(self) -> str:
        return self.get("uname_m")

    @property
    def arch(self) -> str | None:
        """aarch64 | x86_64 for a 64-bit userland we have wheels for, else None."""
        if self.is_32bit:
            return None
        return ARCHES.get(self.get("python_machine") or self.machine)

    @property
    def is_32bit(self) -> bool:
        return (self.get("python_bits") == "32" or self.get("long_bit") == "32"
                or self.get("dpkg_arch") in BITS32 or self.machine in BITS32)

    @property
    def python_version(self) -> tuple[int, ...] | None:
        v = self.get("python_version")
        try:
            return tuple(int(x) for x in v.split(".")) if v else None
        except ValueError:
            return None

    @property
    def glibc(self) -> tuple[int, int] | None:
        try:
            major, minor = self.get("glibc").split(".")[:2]
            return int(major), int(minor)
        except ValueError:
            return None

    @property
    def disk_free_mb(self) -> int | None:
        v = self.get("disk_free_kb")
        return int(v) // 1024 if v.isdigit() else None

    @property
    def mem_mb(self) -> int | None:
        v = self.get("mem_kb")
        return int(v) // 1024 if v.isdigit() else None

    @property
    def cameras(self) -> list[str]:
        return self.get("cameras").split()

    def yes(self, key: str) -> bool:
        return self.get(key) == "yes"

    @property
    def service_mode(self) -> str:
        """How the service will run: systemd (system unit via sudo), systemd-user, or supervisor."""
        if self.yes("systemd") and self.yes("sudo"):
            return "systemd"
        if self.yes("systemd") and self.yes("systemd_user"):
            return "systemd-user"
        return "supervisor"

    def platform_tag(self) -> str | None:
        """The wheel platform of the device (`manylinux_2_36_aarch64`), for `pip download --platform`."""
        if not self.arch or not self.glibc:
            return None
        return f"manylinux_{self.glibc[0]}_{self.glibc[1]}_{self.arch}"

    def python_tag(self) -> str | None:
        v = self.python_version
        return f"{v[0]}.{v[1]}" if v else None


@dataclasses.dataclass
class Assessment:
    problems: list[str]  # each stops the deploy
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _v(t) -> str:
    return ".".join(str(x) for x in t)


def assess(facts: Facts, *, source: str = "0", offline: bool = False) -> Assessment:
    """Problems that stop the deploy and warnings that do not. `source` is the --source the service will use."""
    problems: list[str] = []
    warnings: list[str] = []
    if not facts.complete:
        return Assessment(["device probe failed: the agent's facts are incomplete (it did not finish)"], [])
    if facts.is_32bit:
        what = facts.get("dpkg_arch") or facts.machine or "32-bit"
        problems.append(f"32-bit OS: the device runs a 32-bit userland ({what}, {facts.machine}); LiteRT and "
                        "OpenCV publish 64-bit wheels only. Install Raspberry Pi OS (64-bit) (or any arm64 OS)")
    elif facts.arch is None:
        problems.append(f"unsupported architecture {facts.machine!r}: edgelite's device runtime has wheels for "
                        "aarch64 (Raspberry Pi OS 64-bit) and x86_64")
    pv = facts.python_version
    if not facts.get("python"):
        problems.append("no python3 on the device: install it (sudo apt install python3 python3-venv)")
    elif pv is None:
        problems.append(f"python3 ({facts.get('python')}) did not report its version")
    elif pv[:2] < MIN_PYTHON:
        problems.append(f"Python too old: the device has Python {_v(pv)}; edgelite needs {_v(MIN_PYTHON)} or newer "
                        "(Raspberry Pi OS Bookworm ships 3.11): upgrade the OS")
    elif pv[:2] > MAX_TESTED_PYTHON:
        warnings.append(f"Python {_v(pv)} is newer than {_v(MAX_TESTED_PYTHON)}; LiteRT may have no wheel for it yet")
    if facts.get("python") and facts.get("python_venv") == "no":
        problems.append("python3 cannot create virtual environments: sudo apt install python3-venv")
    g = facts.glibc
    if offline and g is None:
        problems.append("cannot tell the device's glibc (musl, or no getconf): --offline downloads manylinux "
                        "wheels for a glibc device; deploy without --offline")
    if g is not None and g < MIN_GLIBC:
        problems.append(f"glibc {_v(g)} is older than {_v(MIN_GLIBC)}: the device wheels need a newer OS "
                        "(Debian 10 Buster or later)")
    mem = facts.mem_mb
    if mem is not None and mem < 400:
        warnings.append(f"only {mem} MB of memory: large models may not fit")
    dev = camera_device(source)
    if dev:
        if dev not in facts.cameras:
            problems.append(f"no camera at {dev} (--source {source}): the device has "
                            f"{' '.join(facts.cameras) or 'no /dev/video* device'}; connect one, or pass "
                            "--source FILE to classify a video file, or --source picamera2")
    if source_kind(source) == IMX500 and not facts.yes("imx500_package"):
        problems.append("no imx500-package on the device (--source imx500): the AI Camera loads network.rpk, which "
                        "it makes from the bundle's packerOut.zip: sudo apt install imx500-all")
    if facts.get("user") == "root":
        warnings.append("deploying as root: the service will run as root; a regular user (pi) is safer")
    if not facts.yes("systemd"):
        warnings.append("no systemd on the device: the service runs under edgelite's supervisor "
                        "(restarts on failure, watchdog, pidfile) and does not start at boot")
    elif facts.service_mode == "systemd-user":
        warnings.append("no passwordless sudo: installing a `systemctl --user` unit (lingering enabled)")
    if not facts.yes("rsync"):
        warnings.append("no rsync on the device: copying with scp (every file, every time); "
                        "sudo apt install rsync makes re-deploys incremental")
    return Assessment(problems, warnings)


def report(facts: Facts, target: str, assessment: Assessment | None = None) -> str:
    """A short, human report of the device."""
    pv = facts.python_version
    bits = "32-bit" if facts.is_32bit else "64-bit"
    lines = [f"preflight {target}"]
    dev = " · ".join(x for x in (facts.get("board"), facts.get("os_name"), f"{facts.machine} ({bits})") if x)
    lines.append(f"  device     {dev}")
    if facts.get("python"):
        venv = "venv ok" if facts.get("python_venv") == "yes" else "no venv module"
        lines.append(f"  python     {facts.get('python')} {_v(pv) if pv else '?'} ({facts.get('python_bits') or '?'}-bit), "
                     f"{venv}, glibc {facts.get('glibc') or '?'}")
    else:
        lines.append("  python     none")
    free, mem = facts.disk_free_mb, facts.mem_mb
    amount = (f"{free / 1024:.1f} GB" if free >= 10240 else f"{free} MB") if free is not None else ""
    lines.append(f"  disk       {amount} free at {facts.get('dir')}" if free is not None else "  disk       ?")
    if mem is not None:
        lines.append(f"  memory     {mem / 1024:.1f} GB")
    lines.append(f"  cameras    {' '.join(facts.cameras) or 'none'}")
    mode = facts.service_mode
    lines.append(f"  service    {mode}" + ("" if facts.yes("systemd") else " (no systemd)"))
    lines.append(f"  transfer   {'rsync' if facts.yes('rsync') else 'scp (no rsync on the device)'}")
    lines.append(f"  installed  {'release ' + facts.get('current') if facts.get('current') else 'nothing yet'}")
    if assessment:
        lines += [f"  warning    {w}" for w in assessment.warnings]
        lines += [f"  PROBLEM    {p}" for p in assessment.problems]
    return "\n".join(lines)
