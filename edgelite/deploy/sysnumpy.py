"""Keep the device's own numpy: on Raspberry Pi OS apt's numpy (Bookworm 1.24, Trixie 2.2) is what picamera2,
simplejpeg and python3-opencv are built against. The device venv is made with --system-site-packages so
those stay importable; a numpy of the venv's own would shadow apt's inside it: with numpy 2 over Bookworm's
1.24 they break ("numpy.dtype size changed, may indicate binary incompatibility"), and over Trixie's 2.2 a
second copy of numpy is loaded beside the one they were tested with.

So whenever the device has a system numpy edgelite can use, the venv has no numpy of its own, and the
device's pins become `numpy==<that version>` plus the checkout's pins of the other packages when they work
with it (same major version), else only the runtime's pin (ai-edge-litert) and pip's resolver picks the
newest wheels that work with that numpy (on Bookworm: opencv-python-headless 4.11, ml_dtypes 0.5).
The same file drives the host's `pip download` for --offline and the device's install, so both see one
consistent set; the offline install then leaves numpy's wheel out (`package.install_list`).
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
    r"""The device's pins: the system numpy, and the checkout's other pins when they can go with it.

    >>> print(constraints_text("numpy==2.4.6\nopencv-python-headless==5.0.0.93\nai-edge-litert==2.3.0", "1.24.2"), end="")
    # device: keep the system numpy 1.24.2 (apt); written by edgelite deploy
    numpy==1.24.2
    ai-edge-litert==2.3.0
    >>> print(constraints_text("numpy==2.4.6\nopencv-python-headless==5.0.0.93", "2.2.4"), end="")
    # device: keep the system numpy 2.2.4 (apt); written by edgelite deploy
    numpy==2.2.4
    opencv-python-headless==5.0.0.93
    """
    same_abi = not breaks_abi(checkout_pins, system_numpy)
    keep = [ln.strip() for ln in checkout_pins.splitlines()
            if ln.strip() and not ln.lstrip().startswith("#") and _name(ln) != "numpy"
            and (same_abi or _name(ln) in KEEP_PINS)]
    return "\n".join([f"# device: keep the system numpy {system_numpy} (apt); written by edgelite deploy",
                      f"numpy=={system_numpy}", *keep]) + "\n"


def breaks_abi(checkout_pins: str, system_numpy: str) -> bool:
    """True when the pins would put a numpy of another major version (the ABI line) beside the system's."""
    pinned = [ln.split("==", 1)[1].strip() for ln in checkout_pins.splitlines() if _name(ln) == "numpy" and "==" in ln]
    wanted = int(pinned[0].split(".")[0]) if pinned and pinned[0][:1].isdigit() else 2  # unpinned: pip's newest
    return wanted != int(system_numpy.split(".")[0])


def device_constraints(checkout: Path | None, system_numpy: str | None, cache: Path) -> Path | None:
    """The constraints file for this device: `checkout` as it is when the device has no usable system numpy,
    else a derived one that keeps the system numpy (see the module's docstring)."""
    if not usable(system_numpy):
        return checkout
    text = constraints_text(checkout.read_text() if checkout else "", system_numpy)
    out = cache / "constraints" / f"system-numpy-{hashlib.sha256(text.encode()).hexdigest()[:12]}.txt"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return out
