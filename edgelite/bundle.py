"""The bundle: the one contract between the workstation (`convert`) and the device (`run`, `bench`).

A bundle is a directory::

    bundle/
      edgelite.json      the manifest (this module reads and writes it)
      labels.txt         one label per line, same order as the model output
      model_fp32.tflite, model_int8.tflite, model.onnx, model_int8_edgetpu.tflite, ...
      heldout.npz        optional: the held-out test images (uint8, model input size) + labels

Standard library + numpy only: the device reads this module without TensorFlow.

Example::

    >>> b = Bundle.load("bundle/")                      # doctest: +SKIP
    >>> entry = b.select("int8")                        # doctest: +SKIP
    >>> path = b.verified_path(entry)                   # raises BundleError on a bad checksum
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from pathlib import Path
from typing import Any

from edgelite.core import MANIFEST, sha256_file, write_json, write_text_atomic
from edgelite.errors import EXIT_CHECKSUM, EdgeliteError
from edgelite.formats import FORMATS  # noqa: F401  (the manifest's model names; re-exported)

SCHEMA = 1
LABELS = "labels.txt"
HELDOUT = "heldout.npz"

#: what `run` picks when the user does not say, best first (the Edge TPU only when its delegate loads).
PREFERENCE = ["edgetpu", "qat_int8", "pqat_int8", "int8", "pruned_int8", "fp16", "dynamic", "fp32", "onnx"]

INTERPOLATIONS = ("bilinear", "nearest", "area", "bicubic")


class BundleError(EdgeliteError):
    """A bundle is missing or malformed (exit code 2)."""


class ChecksumError(BundleError):
    """A file of the bundle does not match its manifest's size or sha256 (exit code 4)."""

    exit_code = EXIT_CHECKSUM


@dataclasses.dataclass
class InputSpec:
    height: int
    width: int
    channels: int = 3
    color: str = "RGB"
    dtype: str = "uint8"
    resize: str = "bilinear"
    crop: float = 1.0  # fraction of the shorter side kept by a centre crop before resizing (1.0 = none)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        spec = cls(**{k: v for k, v in d.items() if k in known})
        if spec.channels != 3 or spec.color != "RGB" or spec.dtype != "uint8":
            raise BundleError(f"unsupported input spec {d}: edgelite models take RGB uint8 pixels")
        if spec.resize not in INTERPOLATIONS:
            raise BundleError(f"unknown resize interpolation {spec.resize!r}; expected one of {INTERPOLATIONS}")
        return spec


@dataclasses.dataclass
class ModelEntry:
    """One model file of the bundle, with what `convert` measured about it."""

    name: str  # key in FORMATS, e.g. "int8"
    path: str | None  # relative to the bundle; None when the export failed
    format: str  # tflite | onnx | edgetpu
    precision: str  # fp32 | fp16 | dynamic | int8
    status: str = "ok"  # ok | export failed | validation failed | skipped
    error: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    gzip_bytes: int | None = None
    quantization: dict[str, Any] | None = None  # {"input": {"scale", "zero_point", "dtype"}, "output": {...}}
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)  # top1, agreement, per_class, ...
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # sparsity, edgetpu report, ...

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEntry:
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {"name", "path", "format", "precision"} - d.keys()
        if missing:
            raise BundleError(f"manifest model entry {d.get('name', '?')!r} lacks {sorted(missing)}")
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclasses.dataclass
class Bundle:
    root: Path
    labels: list[str]
    input: InputSpec
    models: list[ModelEntry]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # provenance: run, backbone, created, ...

    # ---------------------------------------------------------------- reading
    @classmethod
    def load(cls, root: str | os.PathLike) -> Bundle:
        root = Path(root)
        if not root.exists():
            raise BundleError(f"bundle {root} does not exist; make one with `edgelite convert RUN_DIR --out {root}`")
        if root.is_file():
            raise BundleError(f"{root} is a file, not a bundle directory; pass the folder holding {MANIFEST}")
        mpath = root / MANIFEST
        if not mpath.exists():
            raise BundleError(f"{root} has no {MANIFEST}; is it a bundle written by `edgelite convert`?")
        try:
            data = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{mpath} is not valid JSON ({e}); re-run `edgelite convert`") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise BundleError(f"{mpath}: unsupported manifest schema {data.get('schema') if isinstance(data, dict) else '?'}"
                              f" (this edgelite reads schema {SCHEMA}); re-run `edgelite convert` or upgrade edgelite")
        try:
            labels = [str(x) for x in data["labels"]]
            spec = InputSpec.from_dict(data["input"])
            models = [ModelEntry.from_dict(m) for m in data["models"]]
        except (KeyError, TypeError) as e:
            raise BundleError(f"{mpath}: manifest is missing {e}; re-run `edgelite convert`") from None
        if not labels:
            raise BundleError(f"{mpath}: no labels")
        lpath = root / LABELS
        if lpath.exists():
            file_labels = read_labels(lpath)
            if file_labels != labels:
                raise BundleError(f"{lpath} disagrees with {MANIFEST} labels; the bundle was edited by hand")
        return cls(root=root, labels=labels, input=spec, models=models, info=data.get("info", {}))

    def entry(self, name: str) -> ModelEntry:
        for m in self.models:
            if m.name == name:
                return m
        raise BundleError(f"bundle {self.root} has no {name!r} model; it has {self.available()}")

    def available(self) -> list[str]:
        return [m.name for m in self.models if m.status == "ok" and m.path]

    def select(self, name: str | None = None, *, edgetpu_ok: bool = False) -> ModelEntry:
        """The entry named `name`, or the best available one for this device when `name` is None/"auto"."""
        if name and name != "auto":
            e = self.entry(name)
            if e.status != "ok" or not e.path:
                raise BundleError(f"the {name!r} model in {self.root} is marked {e.status!r}: {e.error or ''}".rstrip(": "))
            return e
        ok = self.available()
        for cand in PREFERENCE:
            if cand == "edgetpu" and not edgetpu_ok:
                continue
            if cand in ok:
                return self.entry(cand)
        raise BundleError(f"bundle {self.root} has no usable model (entries: {[m.name for m in self.models]})")

    def verified_path(self, entry: ModelEntry) -> Path:
        """Path of `entry`'s file after checking its size and sha256 against the manifest."""
        if not entry.path:
            raise BundleError(f"model {entry.name!r} has no file ({entry.status})")
        p = self.root / entry.path
        if not p.exists():
            raise BundleError(f"{p} is missing from the bundle; copy the whole bundle directory")
        if entry.bytes is not None and p.stat().st_size != entry.bytes:
            raise ChecksumError(f"{p} is {p.stat().st_size} bytes, manifest says {entry.bytes}: "
                              "the file is corrupt or truncated; copy the bundle again")
        if entry.sha256 is None:
            raise BundleError(f"manifest has no sha256 for {p}; refusing to load an unverified model")
        digest = sha256_file(p)
        if digest != entry.sha256:
            raise ChecksumError(f"{p} fails its checksum (sha256 {digest[:12]}…, manifest {entry.sha256[:12]}…): "
                              "the file is corrupt; copy the bundle again")
        return p

    def heldout(self):
        """(images uint8 NHWC, label indices) of the held-out split shipped in the bundle, or None."""
        h = self.info.get("heldout")
        if not h:
            return None
        import numpy as np

        p = self.root / h["path"]
        if not p.exists():
            return None
        self._check_heldout(h)
        import zipfile

        try:
            with np.load(p, allow_pickle=False) as z:
                return z["images"], z["labels"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise BundleError(f"{p} is not a readable held-out file ({str(e)[:120]}); re-run `edgelite convert`") from None

    def _check_heldout(self, h: dict[str, Any]) -> None:
        p = self.root / h["path"]
        if h.get("sha256") and p.is_file() and sha256_file(p) != h["sha256"]:
            raise ChecksumError(f"{p} fails its checksum; copy the bundle again")

    def verify(self) -> None:
        """Check every usable model file and the held-out file against the manifest.

        Raises ChecksumError (exit code 4) for a file that does not match, BundleError for one that is missing.
        """
        for e in self.models:
            if e.status == "ok" and e.path:
                self.verified_path(e)
        held = self.info.get("heldout")
        if isinstance(held, dict) and held.get("path"):
            self._check_heldout(held)

    # ---------------------------------------------------------------- writing
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "labels": list(self.labels),
            "input": self.input.to_dict(),
            "models": [m.to_dict() for m in self.models],
            "info": self.info,
        }

    def save(self) -> Path:
        """Write labels.txt and the manifest atomically (temp file + rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.root / LABELS, "".join(f"{label}\n" for label in self.labels))
        write_json(self.root / MANIFEST, self.to_dict(), indent=2, sort_keys=False, default=_json_default)
        return self.root / MANIFEST

    def add_file(self, entry: ModelEntry) -> ModelEntry:
        """Fill sha256/bytes/gzip_bytes for entry's file and put it in the manifest (replacing a same-named one)."""
        if entry.path:
            p = self.root / entry.path
            entry.sha256 = sha256_file(p)
            entry.bytes = p.stat().st_size
            entry.gzip_bytes = gzip_size(p)
        self.models = [m for m in self.models if m.name != entry.name] + [entry]
        return entry


def read_labels(path: str | os.PathLike) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip()]


def gzip_size(path: str | os.PathLike) -> int:
    """Bytes of the file gzip-compressed at level 9: what pruning buys on disk and over the wire."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0))


def _json_default(o: Any):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
