"""Where a benchmark ran: board, CPU, cores, governor, throttling, OS, Python and runtime versions.

Standard library only (plus `runtime_versions`), and every path is read relative to `root`, so a test
can hand in a fake `/proc` + `/sys` tree of a Raspberry Pi. The Pi's throttling state comes from
`vcgencmd get_throttled` (found on PATH; absent = not recorded), read before the run and after it.

On a Pi 4 with the `ondemand` governor (`read_environment()` reads this there; here a few of its keys
stand in for it):

    >>> env = {"board": "Raspberry Pi 4 Model B Rev 1.4", "machine": "aarch64",
    ...        "runtimes": {"ai_edge_litert": "2.3.0"}, "governors": {"cpu0": "ondemand"}, "throttled": None}
    >>> print(governor_warning(env))         # doctest: +ELLIPSIS
    CPU governor is ondemand, not 'performance': latencies include clock ramp-up ...
    >>> throttled_after_run(env) is None     # no vcgencmd before the run: nothing to compare
    True
    >>> environment_stem(env, [1, 2, 4])
    'raspberry-pi-4-model-b-rev-1-4_aarch64_litert-2.3.0_t1-2-4'

`throttled_after_run` goes after the run: None unless the board throttled while it ran.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgelite.device.machine import _read, cpu_cores, cpu_model  # noqa: F401  (this module's API before machine.py)


def board_model(root: str | os.PathLike = "/") -> str | None:
    """The board name from the device tree (`Raspberry Pi 4 Model B Rev 1.4`), None on a PC."""
    text = _read(Path(root), "proc/device-tree/model")
    if text is None:
        return None
    return text.replace("\x00", "").strip() or None


#: /proc/cpuinfo flags (x86 "flags", ARM "Features") that decide which int8 / float kernels a runtime can use
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
                "neon", "asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve", "sve2")


def cpu_vector_extensions(root: str | os.PathLike = "/") -> list[str]:
    """The SIMD extensions of cpu0 that matter for inference (AVX2, AVX-512, VNNI, AMX; NEON, dot product,
    i8mm on ARM), in VECTOR_FLAGS order.

    An int8/fp32 latency ratio means little without them: VNNI (x86) and SDOT (ARM asimddp) are what make
    int8 kernels fast.
    """
    text = _read(Path(root), "proc/cpuinfo") or ""
    m = re.search(r"^(?:flags|features)\s*:(.*)$", text, re.M | re.I)
    have = set(m.group(1).split()) if m else set()
    return [f for f in VECTOR_FLAGS if f in have]


def governors(root: str | os.PathLike = "/") -> dict[str, str]:
    """{cpuN: scaling governor} for every core that exposes cpufreq (empty in most VMs and containers)."""
    base = Path(root) / "sys/devices/system/cpu"
    out: dict[str, str] = {}
    if not base.is_dir():
        return out
    for d in sorted(base.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        g = _read(d, "cpufreq/scaling_governor")
        if g is not None and g.strip():
            out[d.name] = g.strip()
    return out


def cpu_frequencies_mhz(root: str | os.PathLike = "/") -> dict[str, float]:
    """Current and maximum frequency of cpu0 in MHz, when cpufreq exposes them."""
    out: dict[str, float] = {}
    for key, rel in (("cur", "scaling_cur_freq"), ("max", "scaling_max_freq")):
        v = _read(Path(root), f"sys/devices/system/cpu/cpu0/cpufreq/{rel}")
        if v and v.strip().isdigit():
            out[key] = int(v.strip()) / 1000.0
    return out


def temperature_c(root: str | os.PathLike = "/") -> float | None:
    """SoC temperature (thermal_zone0), None where there is none. A hot Pi throttles and slows down."""
    v = _read(Path(root), "sys/class/thermal/thermal_zone0/temp")
    try:
        return round(int(v.strip()) / 1000.0, 1) if v else None
    except ValueError:
        return None


def os_name(root: str | os.PathLike = "/") -> str:
    text = _read(Path(root), "etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
    return m.group(1) if m else f"{platform.system()} {platform.release()}"


def memory_mb(root: str | os.PathLike = "/") -> int | None:
    text = _read(Path(root), "proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) // 1024 if m else None


def governor_warning(env: dict[str, Any]) -> str | None:
    """A warning when a core's CPU governor is not `performance` (pycoral's benchmark habit), else None.

    No cpufreq at all (a VM, a container) is not warned about: the host decides the clock there.
    """
    govs = env.get("governors") or {}
    slow = sorted({g for g in govs.values() if g != "performance"})
    if not slow:
        return None
    return (f"CPU governor is {'/'.join(slow)!s}, not 'performance': latencies include clock ramp-up and will be "
            "noisy and pessimistic. For stable numbers: "
            "`echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`")


#: `vcgencmd get_throttled` bits 0-3 (the state now); bits 16-19 are the same conditions "occurred since boot"
THROTTLED_BITS = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}
SINCE_BOOT_SHIFT = 16


def decode_throttled(value: int) -> dict[str, Any]:
    """`get_throttled`'s bit field by name.

    >>> decode_throttled(0x50005)
    {'value': '0x50005', 'now': ['under-voltage', 'throttled'], 'since_boot': ['under-voltage', 'throttled']}
    """
    return {"value": hex(value),
            "now": [name for bit, name in THROTTLED_BITS.items() if value >> bit & 1],
            "since_boot": [name for bit, name in THROTTLED_BITS.items() if value >> (bit + SINCE_BOOT_SHIFT) & 1]}


def parse_throttled(text: str) -> int | None:
    """'throttled=0x50005' (vcgencmd's answer) -> 0x50005; None for anything else."""
    m = re.search(r"throttled=(0x[0-9a-fA-F]+|[0-9]+)", text or "")
    return int(m.group(1), 0) if m else None


def read_throttled(timeout: float = 5.0) -> dict[str, Any] | None:
    """The Pi's throttling state from `vcgencmd get_throttled`, decoded; None without vcgencmd (not a Pi) or
    when it fails (no access to /dev/vchiq: add the user to the `video` group)."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        p = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    value = parse_throttled(p.stdout) if p.returncode == 0 else None
    return decode_throttled(value) if value is not None else None


def throttled_during(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """Conditions the board was in during the run: active at its start or end, or first recorded since boot
    while it ran. (One that had already occurred since boot and came and went mid-run cannot be seen.)"""
    if not before or not after:
        return []
    seen = set(before["now"]) | set(after["now"]) | (set(after["since_boot"]) - set(before["since_boot"]))
    return [name for name in THROTTLED_BITS.values() if name in seen]


def throttled_warning(env: dict[str, Any]) -> str | None:
    """A warning when the board throttled or was under-voltage during the run (as `governor_warning`), else None."""
    t = env.get("throttled") or {}
    during = throttled_during(t.get("before"), t.get("after"))
    if not during:
        return None
    fix = []
    if "under-voltage" in during:
        fix.append("use the official power supply and a short, thick cable")
    if set(during) - {"under-voltage"}:
        fix.append("add a heatsink or fan and let the board cool before re-running")
    return (f"the board was {', '.join(during)} during the run (vcgencmd get_throttled {t['before']['value']} before, "
            f"{t['after']['value']} after): latencies are slower than this board's; {' and '.join(fix)}")


def throttled_after_run(env: dict[str, Any]) -> str | None:
    """Read `get_throttled` again once the run is over: record it beside the state before (env["throttled"]
    = {before, after}) and return (and add to env["warnings"]) the warning when the board throttled."""
    if not env.get("throttled"):
        return None  # no vcgencmd before the run: not recorded
    env["throttled"]["after"] = read_throttled()
    warning = throttled_warning(env)
    if warning:
        env.setdefault("warnings", []).append(warning)
    return warning


def read_environment(root: str | os.PathLike = "/") -> dict[str, Any]:
    """Everything a result file must say about where it was measured."""
    from edgelite import __version__
    from edgelite.device.runtime import runtime_versions

    govs = governors(root)
    throttled = read_throttled()
    env: dict[str, Any] = {
        "board": board_model(root),
        "cpu": cpu_model(root),
        "cpu_vector_extensions": cpu_vector_extensions(root),
        "cores": cpu_cores(),
        "machine": platform.machine(),
        "governor": (sorted(set(govs.values()))[0] if len(set(govs.values())) == 1 else
                     ",".join(sorted(set(govs.values()))) or None),
        "governors": govs,
        "throttled": {"before": throttled} if throttled else None,  # "after": added by throttled_after_run
        "frequency_mhz": cpu_frequencies_mhz(root),
        "temperature_c": temperature_c(root),
        "memory_mb": memory_mb(root),
        "os": os_name(root),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "runtimes": runtime_versions(),
        "edgelite": __version__,
        "hostname": socket.gethostname(),
        "loadavg": _loadavg(root),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv0": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else None,
    }
    env["warnings"] = [w for w in (governor_warning(env),) if w]
    return env


def _loadavg(root: str | os.PathLike) -> list[float] | None:
    text = _read(Path(root), "proc/loadavg")
    try:
        return [float(x) for x in text.split()[:3]] if text else None
    except ValueError:
        return None


def slug(text: str) -> str:
    """'Raspberry Pi 4 Model B Rev 1.4' -> 'raspberry-pi-4-model-b-rev-1-4' (safe in any file name)."""
    s = re.sub(r"\(r\)|\(tm\)|\bcpu\b|@.*$", "", text.lower())
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s[:48].rstrip("-") or "unknown"


def environment_stem(env: dict[str, Any], threads: list[int] | None = None) -> str:
    """A file-name stem naming the environment: board (or CPU), machine, TFLite runtime, threads.

    Two results with the same stem were measured on the same kind of machine with the same runtime.
    """
    who = slug(env.get("board") or env.get("cpu") or "unknown")
    rts = env.get("runtimes") or {}
    if rts.get("ai_edge_litert"):
        rt = f"litert-{rts['ai_edge_litert']}"
    elif rts.get("tflite_runtime"):
        rt = f"tflite-runtime-{rts['tflite_runtime']}"
    elif rts.get("tensorflow"):
        rt = f"tf-{rts['tensorflow']}"
    elif rts.get("onnxruntime"):
        rt = f"ort-{rts['onnxruntime']}"
    else:
        rt = "no-runtime"
    parts = [who, slug(env.get("machine") or "unknown"), rt]
    if threads:
        parts.append("t" + "-".join(str(t) for t in threads))
    return "_".join(parts)
