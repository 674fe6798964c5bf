"""Where a benchmark ran: board, CPU, cores, governor, OS, Python and runtime versions.

Standard library only (plus `runtime_versions`), and every path is read relative to `root`, so a test
can hand in a fake `/proc` + `/sys` tree of a Raspberry Pi.

    >>> env = read_environment()                           # doctest: +SKIP
    >>> governor_warning(env)                              # None when every core runs `performance`
    >>> environment_stem(env, [1, 2, 4])                   # 'raspberry-pi-4-model-b-rev-1-4_aarch64_litert-2.3.0_t1-2-4'
"""

from __future__ import annotations

import os
import platform
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_text(errors="replace")
    except OSError:
        return None


def board_model(root: str | os.PathLike = "/") -> str | None:
    """The board name from the device tree (`Raspberry Pi 4 Model B Rev 1.4`), None on a PC."""
    text = _read(Path(root), "proc/device-tree/model")
    if text is None:
        return None
    return text.replace("\x00", "").strip() or None


def cpu_model(root: str | os.PathLike = "/") -> str:
    """The CPU name from /proc/cpuinfo ("model name", else the ARM part / hardware line), else platform's."""
    text = _read(Path(root), "proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    for key in ("model name", "hardware", "cpu model", "model"):
        if fields.get(key):
            return fields[key]
    if fields.get("cpu part"):
        return f"ARM part {fields['cpu part']}" + (f" ({fields['cpu implementer']})" if fields.get("cpu implementer") else "")
    return platform.processor() or platform.machine() or "unknown"


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


def cpu_cores() -> int:
    """Cores this process may run on (affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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


def read_environment(root: str | os.PathLike = "/") -> dict[str, Any]:
    """Everything a result file must say about where it was measured."""
    from edgelite import __version__
    from edgelite.device.runtime import runtime_versions

    govs = governors(root)
    env: dict[str, Any] = {
        "board": board_model(root),
        "cpu": cpu_model(root),
        "cpu_vector_extensions": cpu_vector_extensions(root),
        "cores": cpu_cores(),
        "machine": platform.machine(),
        "governor": (sorted(set(govs.values()))[0] if len(set(govs.values())) == 1 else
                     ",".join(sorted(set(govs.values()))) or None),
        "governors": govs,
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
