"""`facts`: what this device is, asked of the agent before anything else is copied (the preflight).

The reply's `facts` are flat `key: "value"` strings (`edgelite.deploy.preflight.Facts` reads them:
uname_m, long_bit, python_version, glibc, disk_free_kb, cameras, systemd, sudo, ...). Every probe is
guarded, so a minimal system still answers; `probe_end` says the answer is whole.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import secrets
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from edgelite.deploy.agent.layout import Layout
from edgelite.manifest import IMX500_PACKAGER
from edgelite.remote.layout import TOKEN_SALT, VENV_READY


def _out(*argv: str) -> str:
    """A command's first output line, or "" when it is missing or fails."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (r.stdout.strip().splitlines() or [""])[0] if r.returncode == 0 else ""


def _ok(*argv: str) -> str:
    try:
        ok = subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return "yes" if ok else "no"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _board() -> str:
    model = _read("/proc/device-tree/model").replace("\0", "").strip()
    if model:
        return model
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("Model") and ":" in line:
            return line.split(":", 1)[1].strip()
    return ""


def facts(lay: Layout) -> dict[str, str]:
    """The device's facts (see the module docstring); `lay.root` need not exist yet."""
    out: dict[str, str] = {"probe": "1"}
    u = os.uname()
    out.update(uname_m=u.machine, kernel=u.release, long_bit=_out("getconf", "LONG_BIT"),
               dpkg_arch=_out("dpkg", "--print-architecture"))
    try:
        rel = platform.freedesktop_os_release()
        out.update(os_id=rel.get("ID", ""), os_version=rel.get("VERSION_ID", ""), os_name=rel.get("PRETTY_NAME", ""))
    except OSError:
        pass
    try:
        out["glibc"] = (os.confstr("CS_GNU_LIBC_VERSION") or "").split()[-1]
    except (ValueError, OSError, IndexError):
        out["glibc"] = ""
    out.update(board=_board(), user=_out("id", "-un"), home=os.path.expanduser("~"), dir=str(lay.root))
    mem = [ln.split()[1] for ln in _read("/proc/meminfo").splitlines() if ln.startswith("MemTotal:")]
    out["mem_kb"] = mem[0] if mem else ""
    probe = lay.root
    while not probe.exists():
        probe = probe.parent
    st = os.statvfs(probe)
    out["disk_free_kb"] = str(st.f_bavail * st.f_frsize // 1024)
    out["cameras"] = " ".join(sorted(glob.glob("/dev/video*")))
    v = sys.version_info
    out.update(python=shutil.which("python3") or sys.executable, python_version=f"{v[0]}.{v[1]}.{v[2]}",
               python_bits=str(8 * struct.calcsize("P")), python_machine=platform.machine(),
               python_venv="yes" if importlib.util.find_spec("venv") and importlib.util.find_spec("ensurepip") else "no")
    try:
        from importlib.metadata import PackageNotFoundError, version

        out["system_numpy"] = version("numpy")
    except (ImportError, PackageNotFoundError):
        pass
    systemd = os.path.isdir("/run/systemd/system")
    out.update(rsync="yes" if shutil.which("rsync") else "no", systemd="yes" if systemd else "no",
               sudo="yes" if os.geteuid() == 0 else _ok("sudo", "-n", "true"),
               systemd_user=_ok("systemctl", "--user", "show-environment") if systemd else "no",
               systemd_analyze="yes" if shutil.which("systemd-analyze") else "no",
               imx500_package="yes" if shutil.which(IMX500_PACKAGER) else "no")
    out["frames"] = "yes" if lay.frames.is_dir() else "no"
    # what a deploy reuses instead of writing it again (its space estimate counts the rest)
    out["bundles"] = " ".join(sorted(p.name for p in _dirs(lay.bundles) if p != lay.incoming))
    out["venvs"] = " ".join(sorted(p.name for p in _dirs(lay.venvs) if (p / VENV_READY).is_file()))
    if lay.current_rid():
        out["current"] = lay.current_rid()
    if lay.service_json.is_file():
        out["service_json"] = lay.service_json.read_text().replace("\n", "")
    out["token_salt"] = token_salt(lay)
    out["probe_end"] = "1"
    return out


def _dirs(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def token_salt(lay: Layout) -> str:
    """This device's random salt (made once, in DIR/run/, 0600): a fleet plan holds only sha256(salt:token), a
    digest no table of common tokens was computed for. "" before the folder exists (the agent lives in it)."""
    if not lay.root.is_dir():
        return ""
    path = lay.run / TOKEN_SALT
    try:
        return path.read_text().strip()
    except OSError:
        pass
    lay.run.mkdir(mode=0o700, exist_ok=True)
    salt = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(salt + "\n")
    return salt


def cmd_facts(lay: Layout, req: dict) -> dict:
    return {"facts": facts(lay)}
