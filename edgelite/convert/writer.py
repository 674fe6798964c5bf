"""The bundle's last steps: the held-out images, the manifest's info block (source, reference, settings,
environment) and swapping the finished folder in place of the old bundle."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

from edgelite.bundle import HELDOUT, LABELS, MANIFEST, Bundle, sha256_file
from edgelite.convert.errors import ConvertError
from edgelite.convert.exporters import EDGETPU_COMPAT_JSON, EDGETPU_COMPAT_MD, Job
from edgelite.convert.formats import EXPORTS
from edgelite.errors import EdgeliteError
from edgelite.stats import pack_correct
from edgelite.train.tfenv import import_tensorflow

LOG_FILE = "convert.log"


def finish_info(job: Job, formats: list[str], test_skipped: int) -> None:
    """Write the held-out images into the bundle and fill ``bundle.info`` (the manifest's info block)."""
    tf = import_tensorflow()

    root = job.bundle.root
    x, y = job.test
    np.savez_compressed(root / HELDOUT, images=x, labels=y.astype(np.int64))
    s = job.options.settings(formats, job.batch, int(len(job.calib)) if job.calib is not None else 0)
    env = {"python": platform.python_version(), "machine": platform.machine(), "tensorflow": tf.__version__}
    for mod in ("tf_keras", "tensorflow_model_optimization", "tf2onnx", "onnx", "onnxruntime", "ai_edge_litert"):
        m = sys.modules.get(mod)
        if m is not None:
            env[mod] = getattr(m, "__version__", "?")
    from edgelite import __version__

    job.bundle.info = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgelite": __version__,
        "source": {"kind": job.src.kind, "path": str(job.src.path.resolve()), "backbone": job.src.backbone,
                   "data_dir": str(Path(job.src.data_dir).resolve())},
        # per-image hits too, so `bench` pairs every format's Δ with the float model even without an fp32 row
        "reference": {"model": "keras float", **{k: job.reference[k] for k in ("images", "top1", "per_class")},
                      "correct": pack_correct(job.ref_scores.argmax(axis=1) == y)},
        "heldout": {"path": HELDOUT, "count": int(len(y)), "sha256": sha256_file(root / HELDOUT),
                    "skipped": int(test_skipped), "split": "test"},
        "settings": s,
        "optimisation": job.optimisation,
        "environment": env,
        "log": LOG_FILE,
    }
    if job.compat:
        job.bundle.info["edgetpu_compat"] = {"json": EDGETPU_COMPAT_JSON, "markdown": EDGETPU_COMPAT_MD}
    if job.src.notes:
        job.bundle.info["notes"] = list(job.src.notes)


def convert_files(out: Path) -> set[str]:
    """The names in bundle folder `out` that convert wrote (or could have): the manifest, labels, held-out
    images, log, compatibility reports, every format's file and the files the old manifest lists."""
    names = {MANIFEST, LABELS, HELDOUT, LOG_FILE, EDGETPU_COMPAT_JSON, EDGETPU_COMPAT_MD}
    names |= {exp.filename for exp in EXPORTS.values()}
    try:
        names |= {m.path for m in Bundle.load(out).models if m.path}
    except EdgeliteError:
        pass  # a damaged manifest: its fixed names are still ours
    return names


def check_out(out: Path, source: Path, overwrite: bool = False) -> list[str]:
    """Refuse an --out that is a file, a folder that is not a bundle, the run itself, or a bundle without
    --overwrite. Returns the names in an existing bundle that convert did not write (kept on --overwrite)."""
    if out.exists() and not out.is_dir():
        raise ConvertError(f"--out {out} is a file; give a folder for the bundle")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise ConvertError(f"--out {out} exists and is not a bundle; choose a new or empty folder "
                           "(convert replaces a previous bundle, never other files)")
    try:
        same = out.resolve() == source.resolve()
    except OSError:
        same = False
    if same:
        raise ConvertError("--out must not be the run directory itself; e.g. --out bundles/NAME")
    if not (out / MANIFEST).is_file():
        return []
    if not overwrite:
        raise ConvertError(f"--out {out} already holds a bundle; pass --overwrite to replace it (files convert "
                           "did not write are kept) or choose another --out")
    ours = convert_files(out)
    return sorted(p.name for p in out.iterdir() if p.name not in ours)


def new_stage(out: Path) -> Path:
    """An empty folder next to `out` to build the bundle in (``.NAME.partial-PID``)."""
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    return stage


def save_and_swap_in(bundle: Bundle, log_lines: list[str], out: Path, keep: list[str] = ()) -> None:
    """Save the staged bundle (models in the format table's order, convert.log, manifest) and put it at `out`,
    moving the old bundle's `keep` (files convert did not write) into it."""
    bundle.models.sort(key=lambda m: list(EXPORTS).index(m.name))
    (bundle.root / LOG_FILE).write_text("\n".join(log_lines) + "\n")
    bundle.save()
    swap_in(bundle.root, out, keep)
    bundle.root = out


def swap_in(stage: Path, out: Path, keep: list[str] = ()) -> None:
    """Replace `out` by the freshly built `stage` (rename, not copy: nothing stale of convert's survives); the
    old folder's `keep` names move into the new one first, so a file convert did not write is never lost."""
    old = None
    if out.exists():
        for name in keep:
            if (out / name).exists() or (out / name).is_symlink():
                os.replace(out / name, stage / name)
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
