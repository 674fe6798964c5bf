"""Keep the device's own numpy: on Raspberry Pi OS (Debian Bookworm) apt's numpy 1.24 is what picamera2,
simplejpeg and python3-opencv are built against. The device venv is made with --system-site-packages so
those stay importable; if pip then put numpy 2 into the venv, they would break inside it ("numpy.dtype
size changed, may indicate binary incompatibility").

So when the device has a system numpy edgelite can use, the device's pins become: `numpy==<that version>`
(pip sees it installed and installs no numpy) plus the checkout's pin of the runtime (ai-edge-litert);
every other dependency is left to pip's resolver, which picks the newest wheels that work with that
numpy (e.g. opencv-python-headless 4.11, ml_dtypes 0.5). The same file drives the host's `pip download`
for --offline and the device's `pip install -c`, so both see one consistent set.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

#: the oldest numpy edgelite runs on (Debian Bookworm / Raspberry Pi OS 12 ship 1.24.2)
MIN_SYSTEM_NUMPY = (1, 24)
#: pins kept from the checkout's constraints: the inference runtime edgelite is tested with
KEEP_PINS = ("ai-edge-litert",)


def usable(version: str | None) -> bool:
    """True when a system numpy `version` (e.g. "1.24.2") is one edgelite runs on."""
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= MIN_SYSTEM_NUMPY


def _name(line: str) -> str:
    return re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def constraints_text(checkout_pins: str, system_numpy: str) -> str:
    keep = [ln.strip() for ln in checkout_pins.splitlines() if ln.strip() and _name(ln) in KEEP_PINS]
    return "\n".join([f"# device: keep the system numpy {system_numpy} (apt); written by edgelite deploy",
                      f"numpy=={system_numpy}", *keep]) + "\n"


def breaks_abi(checkout_pins: str, system_numpy: str) -> bool:
    """True when the pins would put a numpy of another major version (the ABI line) beside the system's."""
    pinned = [ln.split("==", 1)[1].strip() for ln in checkout_pins.splitlines() if _name(ln) == "numpy" and "==" in ln]
    wanted = int(pinned[0].split(".")[0]) if pinned and pinned[0][:1].isdigit() else 2  # unpinned: pip's newest
    return wanted != int(system_numpy.split(".")[0])


def device_constraints(checkout: Path | None, system_numpy: str | None, cache: Path) -> Path | None:
    """The constraints file for this device: `checkout` as it is, or a derived one that keeps the system numpy
    when it is usable and the checkout's pins would otherwise install a numpy of another major version."""
    pins = checkout.read_text() if checkout else ""
    if not usable(system_numpy) or not breaks_abi(pins, system_numpy):
        return checkout
    text = constraints_text(pins, system_numpy)
    out = cache / "constraints" / f"system-numpy-{hashlib.sha256(text.encode()).hexdigest()[:12]}.txt"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return out
