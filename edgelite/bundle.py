"""The bundle: the one contract between the workstation (`convert`) and the device (`run`, `bench`).

A bundle is a directory::

    bundle/
      edgelite.json      the manifest (this module reads and writes it)
      labels.txt         one label per line, same order as the model output
      model_fp32.tflite, model_int8.tflite, model.onnx, model_int8_edgetpu.tflite, ...
      heldout.npz        optional: the held-out test images (uint8, model input size) + labels

Standard library + numpy only: the device reads this module without TensorFlow.

Example: a bundle written, read back, and a changed byte caught before anything loads the file::

    >>> import tempfile; tmp = tempfile.TemporaryDirectory(); root = Path(tmp.name)
    >>> _ = (root / "model_int8.tflite").write_bytes(b"the model")
    >>> b = Bundle(root, labels=["cat", "dog"], input=InputSpec(96, 96), models=[])
    >>> _ = b.add_file(ModelEntry("int8", "model_int8.tflite", "tflite", "int8")); _ = b.save()
    >>> b = Bundle.load(root)
    >>> b.verified_path(b.select()).name            # select(): the best model this device can run
    'model_int8.tflite'
    >>> _ = (root / "model_int8.tflite").write_bytes(b"the modeL")
    >>> b.verified_path(b.select("int8"))           # doctest: +ELLIPSIS
    Traceback (most recent call last):
    edgelite.bundle.ChecksumError: .../model_int8.tflite fails its checksum (...): the file is corrupt; copy the bundle again
    >>> tmp.cleanup()
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgelite.errors import EXIT_CHECKSUM, EdgeliteError, first_line
from edgelite.formats import FORMATS  # noqa: F401  (the manifest's model names; re-exported)
from edgelite.jsonfile import write_json, write_text_atomic
from edgelite.manifest import MANIFEST, confined_file, sha256_file
from edgelite.suggest import did_you_mean

SCHEMA = 1
LABELS = "labels.txt"
HELDOUT = "heldout.npz"

#: what `run` picks when the user does not say, best first (the Edge TPU only when its delegate loads).
PREFERENCE = ["edgetpu", "qat_int8", "pqat_int8", "int8", "pruned_int8", "fp16", "dynamic", "fp32", "onnx"]

INTERPOLATIONS = ("bilinear", "nearest", "area", "bicubic")
MAX_SIDE = 4096  # no classifier takes a larger input; the device's runtime refuses more too
MAX_MODEL_BYTES = 2 << 30  # a model file the device reads into memory whole


def _check(ok: bool, what: str) -> None:
    """A malformed manifest field: one line that says which, and what to do (exit code 2)."""
    if not ok:
        raise BundleError(f"{MANIFEST}: {what}; the manifest is malformed — re-run `edgelite convert`")


def _r(v: Any) -> str:
    """A manifest value for an error message: its repr, cut to 40 characters."""
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_hex64(v: Any) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


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
        _check(isinstance(d, dict), "input is not an object")
        known = {f.name for f in dataclasses.fields(cls)}
        spec = cls(**{k: v for k, v in d.items() if k in known})
        for side in ("height", "width"):
            v = getattr(spec, side)
            _check(_is_int(v) and 0 < v <= MAX_SIDE, f"input {side} {_r(v)} is not a whole number 1..{MAX_SIDE}")
        _check(isinstance(spec.crop, (int, float)) and not isinstance(spec.crop, bool) and 0 < spec.crop <= 1,
               f"input crop {_r(spec.crop)} is not a fraction in (0, 1]")
        if spec.channels != 3 or spec.color != "RGB" or spec.dtype != "uint8":
            raise BundleError(f"unsupported input spec {_r(d)}: edgelite models take RGB uint8 pixels")
        if spec.resize not in INTERPOLATIONS:
            raise BundleError(f"unknown resize interpolation {_r(spec.resize)}; expected one of {INTERPOLATIONS}")
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
        _check(isinstance(d, dict), f"a model entry is a {type(d).__name__}, not an object")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {"name", "path", "format", "precision"} - d.keys()
        if missing:
            raise BundleError(f"manifest model entry {_r(d.get('name', '?'))} lacks {sorted(missing)}")
        e = cls(**{k: v for k, v in d.items() if k in known})
        for key in ("name", "format", "precision", "status"):
            _check(isinstance(getattr(e, key), str), f"model entry {key} {_r(getattr(e, key))} is not a string")
        _check(e.path is None or isinstance(e.path, str), f"model {_r(e.name)}: path {_r(e.path)} is not a string")
        _check(isinstance(e.metrics, dict) and isinstance(e.extra, dict)
               and (e.quantization is None or isinstance(e.quantization, dict)),
               f"model {_r(e.name)}: metrics, extra and quantization must be objects")
        if e.status == "ok" and e.path:
            # what the device checks before it loads a file: both required, so nothing is loaded unverified
            _check(_is_hex64(e.sha256), f"model {_r(e.name)} has no valid sha256 (64 lowercase hex digits)")
            _check(_is_int(e.bytes) and 0 <= e.bytes <= MAX_MODEL_BYTES,
                   f"model {_r(e.name)}: bytes {_r(e.bytes)} is not a file size")
        return e


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
            raise BundleError(f"bundle {root} does not exist"
                              + (did_you_mean(root) or f"; make one with `edgelite convert RUN_DIR --out {root}`"))
        if root.is_file():
            raise BundleError(f"{root} is a file, not a bundle directory; pass the folder holding {MANIFEST}")
        mpath = root / MANIFEST
        if not mpath.exists():
            raise BundleError(f"{root} has no {MANIFEST}; is it a bundle written by `edgelite convert`?")
        if not mpath.is_file():
            raise BundleError(f"{mpath} is not a regular file; is {root} a bundle written by `edgelite convert`?")
        try:
            data = json.loads(mpath.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise BundleError(f"{mpath} is not valid JSON ({first_line(e, 120)}); re-run `edgelite convert`") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise BundleError(f"{mpath}: unsupported manifest schema {data.get('schema') if isinstance(data, dict) else '?'}"
                              f" (this edgelite reads schema {SCHEMA}); re-run `edgelite convert` or upgrade edgelite")
        try:
            labels, models = data["labels"], data["models"]
            _check(isinstance(labels, list) and all(isinstance(x, str) for x in labels), "labels is not a list of strings")
            _check(isinstance(models, list), "models is not a list")
            _check(isinstance(data.get("info", {}), dict), "info is not an object")
            spec = InputSpec.from_dict(data["input"])
            models = [ModelEntry.from_dict(m) for m in models]
        except (KeyError, TypeError) as e:
            raise BundleError(f"{mpath}: manifest is missing or mistypes {first_line(e, 80)}; "
                              "re-run `edgelite convert`") from None
        if not labels:
            raise BundleError(f"{mpath}: no labels")
        lpath = root / LABELS
        if lpath.exists():
            try:
                file_labels = read_labels(lpath)
            except (OSError, UnicodeDecodeError) as e:
                raise BundleError(f"{lpath} is not a UTF-8 text file ({first_line(e, 80)}); "
                                  "re-run `edgelite convert`") from None
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
                raise BundleError(f"the {name!r} model in {self.root} is marked {_r(e.status)}: {_r(e.error or '')}")
            return e
        ok = self.available()
        for cand in PREFERENCE:
            if cand == "edgetpu" and not edgetpu_ok:
                continue
            if cand in ok:
                return self.entry(cand)
        raise BundleError(f"bundle {self.root} has no usable model (entries: {[m.name for m in self.models]})")

    def file(self, rel: Any) -> Path:
        """The bundle's file `rel` (a manifest path): relative, inside the bundle, a regular file."""
        try:
            return confined_file(self.root, rel)
        except FileNotFoundError:
            raise BundleError(f"{self.root}/{_r(rel)} is missing from the bundle; copy the whole bundle directory") \
                from None
        except (ValueError, OSError) as e:
            raise BundleError(f"{self.root}/{MANIFEST}: {e}; a bundle only refers to its own files") from None

    def verified_bytes(self, entry: ModelEntry) -> tuple[Path, bytes]:
        """(path, content) of `entry`'s file, its size and sha256 checked against the manifest.

        The content is read once and hashed: load *these* bytes (`model_content`), never the path
        again, so a file swapped after the check is never what runs.
        """
        if not entry.path:
            raise BundleError(f"model {entry.name!r} has no file ({entry.status})")
        if not _is_hex64(entry.sha256) or not _is_int(entry.bytes):
            raise BundleError(f"manifest has no sha256 and size for {entry.path}; refusing to load an unverified model")
        p = self.file(entry.path)
        with open(p, "rb") as f:
            data = f.read(entry.bytes + 1)  # never more than the manifest promises (+1 to see a longer file)
        if len(data) != entry.bytes:
            raise ChecksumError(f"{p} is {p.stat().st_size} bytes, manifest says {entry.bytes}: "
                                "the file is corrupt or truncated; copy the bundle again")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            raise ChecksumError(f"{p} fails its checksum (sha256 {digest[:12]}…, manifest {entry.sha256[:12]}…): "
                                "the file is corrupt; copy the bundle again")
        return p, data

    def verified_path(self, entry: ModelEntry) -> Path:
        """Path of `entry`'s file after checking its size and sha256 against the manifest."""
        return self.verified_bytes(entry)[0]

    def heldout(self):
        """(images uint8 NHWC, label indices) of the held-out split shipped in the bundle, or None."""
        h = self.info.get("heldout")
        if not h:
            return None
        import numpy as np

        if not isinstance(h, dict) or not (self.root / str(h.get("path"))).exists():
            return None
        p = self._check_heldout(h)
        import zipfile

        try:
            with np.load(p, allow_pickle=False) as z:
                return z["images"], z["labels"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise BundleError(f"{p} is not a readable held-out file ({str(e)[:120]}); re-run `edgelite convert`") from None

    def _check_heldout(self, h: dict[str, Any]) -> Path:
        p = self.file(h.get("path"))
        if h.get("sha256") and sha256_file(p) != h["sha256"]:
            raise ChecksumError(f"{p} fails its checksum; copy the bundle again")
        return p

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
