"""Does the deploy fit on the device? What it will write into the deploy folder, from the real files: the
bundle, the wheels pushed, and the venv they unpack into (less what the device already holds: a bundle and a
ready venv of the same id are reused). `edgelite deploy` and `edgelite fleet` refuse a device where it does not.

The venv is estimated from the wheels' unpacked size (their zip directories: no unpacking here), times
VENV_FACTOR (uv) or PIP_FACTOR (pip, which writes bytecode too), plus pip's own copy in a venv made with pip.
Measured on this repo's x86_64 device wheels (267 MiB unpacked): a venv of 277 MiB made by uv, 318 MiB by pip
(du -sm). MB here are MiB, as the device's free space is.
Without --offline the device downloads the wheels itself: ONLINE_VENV_MB, from the aarch64 set (numpy,
OpenCV, LiteRT: 63 MB of wheels, 196 MB unpacked) and pip's downloads.

    >>> need = Need(bundle=3.2, wheels=101.0, venv=325.9)
    >>> need.total_mb, need.parts()
    (441, 'bundle 3 MB + wheels 101 MB + venv ~326 MB + 10 MB for the release and logs')
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
from collections.abc import Iterable
from pathlib import Path

from edgelite.deploy.plan import Artifacts, BundleInfo
from edgelite.deploy.preflight import Facts

VENV_FACTOR = 1.05  # uv's venv over the unpacked wheels: file system blocks and the install records (measured 1.04)
PIP_FACTOR = 1.10  # pip's: it also compiles every module to bytecode (measured 1.09 with its seed taken off)
PIP_SEED_MB = 26.0  # pip itself, in a venv made with pip (a uv venv is made --without-pip)
ONLINE_VENV_MB = 300.0  # online, the device fetches numpy + OpenCV + LiteRT (aarch64: 60 MiB, 187 unpacked, x1.1)
MARGIN_MB = 10.0  # the release record, the unit, the agent's job files and the service's first log lines


@dataclasses.dataclass(frozen=True)
class Need:
    """MB the deploy writes into the device folder, by part."""

    bundle: float = 0.0
    wheels: float = 0.0  # the edgelite wheel, the pins, and with --offline every dependency wheel and uv's
    venv: float = 0.0  # the estimate (0 when the device has this venv already)

    @property
    def total_mb(self) -> int:
        return math.ceil(self.bundle + self.wheels + self.venv + MARGIN_MB)

    def parts(self) -> str:
        parts = [f"bundle {self.bundle:.0f} MB", f"wheels {self.wheels:.0f} MB"]
        parts.append(f"venv ~{self.venv:.0f} MB" if self.venv else "venv reused")
        return " + ".join(parts) + f" + {MARGIN_MB:.0f} MB for the release and logs"


MB = 1 << 20  # the unit of the device's free space (facts: disk_free_kb // 1024)


def _mb(paths: Iterable[Path]) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / MB


def unpacked_mb(wheels: Iterable[Path]) -> float:
    """MB the wheels hold unpacked (the sizes in their zip directories)."""
    total = 0
    for w in wheels:
        try:
            with zipfile.ZipFile(w) as z:
                total += sum(i.file_size for i in z.infolist())
        except (OSError, zipfile.BadZipFile):  # not a wheel after all: the installer will say so; count its bytes
            total += w.stat().st_size if w.is_file() else 0
    return total / MB


def needed(facts: Facts, bundle: BundleInfo, art: Artifacts, media: Path | None = None) -> Need:
    """What this deploy writes on this device (its facts list the bundles and ready venvs it has)."""
    bundle_mb = 0.0 if bundle.id in facts.get("bundles").split() else _mb(bundle.path.rglob("*"))
    media_mb = _mb([media]) if media else 0.0
    if art.env in facts.get("venvs").split():  # the venv is keyed by its wheels: they are there too
        return Need(bundle_mb, media_mb, 0.0)
    deps = [art.house / w for w in art.wheels or ()] if art.house else []
    pushed = [art.wheel, *deps, *([art.installer] if art.installer else []), *([art.constraints] if art.constraints else [])]
    wheels_mb = _mb(pushed) + media_mb
    if art.installer:  # uv: its binary unpacked next to its wheel, a venv --without-pip
        wheels_mb += unpacked_mb([art.installer])
        venv = unpacked_mb([art.wheel, *deps]) * VENV_FACTOR
    elif deps:
        venv = unpacked_mb([art.wheel, *deps]) * PIP_FACTOR + PIP_SEED_MB
    else:
        venv = unpacked_mb([art.wheel]) * PIP_FACTOR + PIP_SEED_MB + ONLINE_VENV_MB
    return Need(bundle_mb, wheels_mb, venv)


def problem(facts: Facts, need: Need, offline: bool) -> str | None:
    """The refusal when `need` does not fit in the device folder's free space (None when it does)."""
    free = facts.disk_free_mb
    if free is None or free >= need.total_mb:
        return None
    ways = ["free space there (old frames: deploy --pull-frames)", "deploy with --dir on a larger filesystem"]
    if offline:
        ways.append("without --offline (the device downloads its wheels: no copy of them is kept)")
    return (f"not enough disk: the deploy needs {need.total_mb} MB in {facts.get('dir')} ({need.parts()}), "
            f"{free} MB free: {', or '.join(ways)}")
