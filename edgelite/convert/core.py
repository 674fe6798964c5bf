"""`convert`: a training run -> a validated bundle (TFLite fp32/fp16/dynamic/int8, pruned, QAT, ONNX, Edge TPU).

    >>> from edgelite.convert import convert                                          # doctest: +SKIP
    >>> b = convert("runs/demo", "bundles/demo", formats="fp32,int8,onnx", prune=0.5)  # doctest: +SKIP
    >>> b.entry("int8").metrics["top1"], b.entry("pruned_int8").extra["sparsity"]      # doctest: +SKIP

Every export is wrapped the same way (timing, size, errors): a format that fails is marked
``export failed`` / ``validation failed`` in the table and the manifest, and the others go on. The
bundle is built in a temporary folder next to ``out`` and swapped in at the end, so a re-run never
keeps a stale file and a crash never leaves half a bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.bundle import HELDOUT, MANIFEST, Bundle, ModelEntry, sha256_file
from edgelite.convert.errors import ConvertError, GateFailed
from edgelite.convert.formats import (
    EDGETPU_SOURCE_PREFERENCE,
    EXPORTS,
    EXTRAS,
    INT8_NAMES,
    IO_TYPES,
    parse_formats,
    require_one_installed,
)
from edgelite.errors import first_line
from edgelite.train.tfenv import import_tensorflow

EDGETPU_COMPAT_JSON = "edgetpu_compat.json"
EDGETPU_COMPAT_MD = "edgetpu_compat.md"
LOG_FILE = "convert.log"

@dataclasses.dataclass
class Settings:
    """Everything that shapes the conversion; saved into the manifest (info.settings)."""

    formats: list[str]
    prune: float | None = None
    prune_epochs: int = 3
    prune_block: int = 1
    qat: bool = False
    qat_epochs: int = 2
    calibration: int = 300
    per_tensor: bool = False
    io_type: str = "uint8"
    max_drop: float | None = None
    opset: int = 17
    batch_size: int | None = None
    prune_lr: float = 1e-4
    qat_lr: float = 1e-5
    seed: int = 0

    def check(self) -> Settings:
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise ConvertError(f"--prune {self.prune}: sparsity must be between 0 and 1 (e.g. 0.5 for 50 %)")
        if self.prune_block < 1:
            raise ConvertError(f"--prune-block {self.prune_block}: give a block length >= 1 (1 = unstructured)")
        if self.prune_block > 1 and self.prune is None:
            raise ConvertError(f"--prune-block {self.prune_block} needs --prune SPARSITY (e.g. --prune 0.5)")
        if self.prune_epochs < 1 or self.qat_epochs < 1:
            raise ConvertError("--prune-epochs and --qat-epochs must be at least 1")
        if self.calibration < 1:
            raise ConvertError(f"--calibration {self.calibration}: need at least 1 image (a few hundred is typical)")
        if self.io_type not in IO_TYPES:
            raise ConvertError(f"--io-type {self.io_type!r}: choose one of {', '.join(IO_TYPES)}")
        if self.max_drop is not None and self.max_drop < 0:
            raise ConvertError(f"--max-drop {self.max_drop}: give the allowed top-1 drop in points, >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConvertError("--batch-size must be at least 1")
        from edgelite.convert.onnx_export import MAX_OPSET

        if not 9 <= self.opset <= MAX_OPSET:  # checked before any work, not after calibration and QAT
            raise ConvertError(f"--opset {self.opset}: tf2onnx 1.17 supports opsets 9..{MAX_OPSET}")
        return self


class _Log:
    """Progress to stdout (when verbose) and into the bundle's convert.log (always)."""

    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.lines: list[str] = []
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        line = f"[{time.perf_counter() - self.t0:6.1f}s] {msg}"
        self.lines.append(line)
        if self.verbose:
            print(line, flush=True)

    def detail(self, msg: str) -> None:
        self.lines.append(msg)


def convert(source: str | os.PathLike, out: str | os.PathLike, *, formats: str | list[str] | None = None,
            prune: float | None = None, prune_epochs: int = 3, prune_block: int = 1, qat: bool = False,
            qat_epochs: int = 2, calibration: int = 300, per_tensor: bool = False, io_type: str = "uint8",
            max_drop: float | None = None,
            data: str | os.PathLike | None = None, opset: int = 17, batch_size: int | None = None,
            prune_lr: float = 1e-4, qat_lr: float = 1e-5, seed: int = 0, verbose: bool = True,
            trust_model: bool = False) -> Bundle:
    """Convert a run directory (or a .keras file with `data`) into a validated bundle at `out`.

    formats: comma list or sequence of fp32, fp16, dynamic, int8, onnx, edgetpu (default: all six);
    prune: target sparsity (adds ``pruned_int8``), in runs of `prune_block` weights; qat: quantization-aware
    training (adds ``qat_int8``, or ``pqat_int8`` together with prune); per_tensor: one scale per weight
    tensor, for post-training int8 and QAT alike. Returns the saved Bundle. Raises ConvertError for a
    user error, GateFailed when `max_drop` is exceeded (the bundle is still written; ``.bundle``).
    Formats that fail are marked in the bundle; check ``bundle.models[i].status``.
    """
    log = _Log(verbose)
    settings = Settings(formats=[], prune=prune, prune_epochs=prune_epochs, prune_block=prune_block, qat=qat,
                        qat_epochs=qat_epochs,
                        calibration=calibration, per_tensor=per_tensor, io_type=io_type, max_drop=max_drop,
                        opset=opset, batch_size=batch_size, prune_lr=prune_lr, qat_lr=qat_lr, seed=seed).check()
    names = parse_formats(formats, prune=prune, qat=qat)
    explicit = set(names) if formats is not None else {n for n in names if n in INT8_NAMES[1:]}
    if formats is not None:
        require_one_installed(names)
    if "edgetpu" in names and not any(n in names for n in INT8_NAMES):
        names.insert(names.index("edgetpu"), "int8")
        log("edgetpu is compiled from an int8 model: adding int8")
    settings.formats = names
    out = Path(out)
    _check_out(out, Path(source))

    from edgelite.convert.source import open_source

    src = open_source(source, data, trust_model=trust_model)
    log(f"converting {src.path} ({src.backbone or 'keras model'}, {src.spec.height}x{src.spec.width}, "
        f"{len(src.labels)} classes) -> {out}: {', '.join(names)}")
    for note in src.notes:
        log(f"note: {note}")
    batch = settings.batch_size or src.batch_size

    # ---- images: held-out test split for validation; training split for calibration / fine-tuning
    test_x, test_y, test_skipped = src.images("test")
    if not len(test_y):
        raise ConvertError(f"no readable held-out (test) images in {src.data_dir}; the validator needs some — "
                           "re-train with --test-split > 0")
    needs_training = prune is not None or qat
    needs_calibration = needs_training or any(EXPORTS[n].quantization == "full_int8" for n in names)
    rng = np.random.default_rng(seed)
    train_x = train_y = calib = None
    if needs_training:
        train_x, train_y, _ = src.images("train")
        calib = train_x[rng.permutation(len(train_y))[:calibration]]
    elif needs_calibration:
        idx = rng.permutation(len(src.split.train))[:calibration]
        calib, _, _ = src.images("train", np.sort(idx))
    if needs_calibration and (calib is None or not len(calib)):
        raise ConvertError(f"no readable training images in {src.data_dir} to calibrate int8 quantization")
    log(f"{len(test_y)} held-out images" + (f" ({test_skipped} unreadable skipped)" if test_skipped else "")
        + (f", {len(calib)} calibration images" if calib is not None else "")
        + (f", {len(train_y)} training images for fine-tuning" if train_y is not None else ""))

    from edgelite.convert.validate import keras_scores, metrics_from_scores

    float_model = src.load_model()
    ref_scores = keras_scores(float_model, test_x, src.spec, batch_size=batch)
    reference = metrics_from_scores(ref_scores, test_y, src.labels)
    log(f"float Keras model: top-1 {reference['top1']:.3f} on the held-out split")

    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        bundle = Bundle(root=stage, labels=list(src.labels), input=src.spec, models=[], info={})
        job = _Job(src=src, settings=settings, log=log, bundle=bundle, float_model=float_model, calib=calib,
                   train=(train_x, train_y), test=(test_x, test_y), ref_scores=ref_scores, reference=reference,
                   batch=batch, explicit=explicit)
        for name in names:
            if name != "edgetpu":
                job.export(name)
        job.edgetpu_reports()
        if "edgetpu" in names:
            job.export_edgetpu()
        job.finish_info(test_skipped)
        failures = job.gate_failures
        bundle.models.sort(key=lambda m: list(EXPORTS).index(m.name))
        (stage / LOG_FILE).write_text("\n".join(log.lines) + "\n")
        bundle.save()
        _swap_in(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    bundle.root = out
    from edgelite.convert.report import table

    if verbose:
        print(f"\nbundle {out} ({len(test_y)} held-out images; Δ top-1 in points vs the float Keras model)")
        print(table(bundle), flush=True)
    if failures:
        raise GateFailed("; ".join(failures), bundle=bundle, failures=[f.split(" ", 1)[0] for f in failures])
    return bundle


def failed_formats(bundle: Bundle) -> list[ModelEntry]:
    """Entries that failed to export or validate. Skipped ones (a tool missing for a format the user did
    not name, no edgetpu_compiler) are not failures."""
    return [m for m in bundle.models if m.status in ("export failed", "validation failed")]


# ------------------------------------------------------------------------------------------ the work
@dataclasses.dataclass
class _Job:
    src: Any
    settings: Settings
    log: _Log
    bundle: Bundle
    float_model: Any
    calib: np.ndarray | None
    train: tuple
    test: tuple
    ref_scores: np.ndarray
    reference: dict
    batch: int
    explicit: set
    gate_failures: list = dataclasses.field(default_factory=list)
    _models: dict = dataclasses.field(default_factory=dict)
    _errors: dict = dataclasses.field(default_factory=dict)
    optimisation: dict = dataclasses.field(default_factory=dict)
    compat: dict = dataclasses.field(default_factory=dict)

    # ---- the Keras model each export starts from, built once
    def model_for(self, kind: str):
        if kind in self._errors:
            raise ConvertError(self._errors[kind])
        if kind in self._models:
            return self._models[kind]
        s = self.settings
        try:
            if kind == "float":
                model = self.float_model
            elif kind == "pruned":
                from edgelite.convert.optimize import prune

                model, info = prune(self.src.load_model(), *self.train, sparsity=s.prune, epochs=s.prune_epochs,
                                    block=s.prune_block,
                                    batch_size=self.batch, lr=s.prune_lr, seed=s.seed, log=self.log)
                self.optimisation["prune"] = info
            elif kind == "qat":
                from edgelite.convert.optimize import quantize_aware

                base = self.model_for("pruned") if s.prune is not None else self.src.load_model()
                model, info = quantize_aware(base, *self.train, self.calib, epochs=s.qat_epochs, batch_size=self.batch,
                                             lr=s.qat_lr, preserve_sparsity=s.prune is not None,
                                             per_tensor=s.per_tensor, seed=s.seed,
                                             log=self.log)
                self.optimisation["qat"] = info
            else:
                raise ValueError(kind)
        except ConvertError as e:
            self._errors[kind] = str(e)
            raise
        except Exception as e:
            self._errors[kind] = _one_line(e)
            self.log.detail(traceback.format_exc())
            raise ConvertError(self._errors[kind]) from None
        if kind != "float":  # the optimised Keras model itself on the held-out split: what fine-tuning did,
            from edgelite.convert.validate import keras_scores  # apart from what int8 conversion does

            x, y = self.test
            top1 = float((keras_scores(model, x, self.src.spec, self.batch).argmax(1) == y).mean())
            self.optimisation["prune" if kind == "pruned" else "qat"]["keras_top1"] = top1
            self.log(f"{kind} Keras model: top-1 {top1:.3f} on the held-out split (float {self.reference['top1']:.3f})")
        self._models[kind] = model
        return model

    def _missing(self, needs) -> str | None:
        for need in needs:
            if need.startswith("bin:"):
                if shutil.which(need[4:]) is None:
                    return f"{need[4:]} is not on PATH"
                continue
            try:
                importlib.import_module(need)
            except ImportError:
                return f"{need} is not installed (pip install 'edgelite[{EXTRAS[need]}]')"
        return None

    def export(self, name: str) -> ModelEntry:
        exp = EXPORTS[name]
        entry = ModelEntry(name=name, path=None, format=exp.file_format, precision=exp.precision)
        missing = self._missing(exp.needs)
        if missing:
            entry.status = "export failed" if name in self.explicit else "skipped"
            entry.error = missing
            self.log(f"{name}: {entry.status}: {missing}")
            return self.bundle.add_file(entry)
        self.log(f"{name}: exporting ({exp.description})")
        t = time.perf_counter()
        path = self.bundle.root / exp.filename
        try:
            model = self.model_for(exp.source)
            if exp.file_format == "onnx":
                from edgelite.convert.onnx_export import export_onnx

                entry.extra["onnx"] = export_onnx(model, path, opset=self.settings.opset)
            else:
                self._write_tflite(entry, model, exp, path)
        except ConvertError as e:
            return self._fail(entry, "export failed", str(e))
        except Exception as e:
            self.log.detail(traceback.format_exc())
            return self._fail(entry, "export failed", _one_line(e))
        entry.path = exp.filename
        entry.extra["export_seconds"] = round(time.perf_counter() - t, 2)
        if exp.source != "float":
            entry.extra["optimisation"] = {k: v for k, v in self.optimisation.items()
                                           if k == "prune" or (k == "qat" and exp.source == "qat")}
        self.bundle.add_file(entry)
        self.log(f"{name}: exported {exp.filename} ({entry.bytes / 1e6:.2f} MB, gzip {entry.gzip_bytes / 1e6:.2f} MB) "
                 f"in {entry.extra['export_seconds']:.1f} s")
        self._validate(entry)
        return entry

    def _write_tflite(self, entry: ModelEntry, model, exp, path: Path) -> None:
        from edgelite.convert.metadata import embed_metadata
        from edgelite.convert.tflite import io_quantization, to_tflite, weight_sparsity

        s = self.settings
        data = to_tflite(model, exp.quantization, calibration=self.calib, io_type=s.io_type, per_tensor=s.per_tensor)
        entry.quantization = io_quantization(data)
        if exp.quantization == "full_int8":
            q = entry.quantization["input"]
            entry.quantization["raw_pixels"] = (q["dtype"] == "uint8" and abs(q["scale"] - 1.0) < 1e-6
                                                and q["zero_point"] == 0)
            entry.quantization["per_channel"] = not s.per_tensor
        if exp.source in ("pruned", "qat") and s.prune is not None:
            entry.extra["sparsity"] = weight_sparsity(data)["weight_sparsity"]
        data = embed_metadata(data, self.metadata(entry))
        path.write_bytes(data)

    def metadata(self, entry: ModelEntry) -> dict[str, Any]:
        return {"labels": list(self.bundle.labels), "input": self.bundle.input.to_dict(), "model": entry.name,
                "precision": entry.precision, "format": entry.format, "quantization": entry.quantization,
                "source": str(self.src.path.name), "backbone": self.src.backbone}

    def _validate(self, entry: ModelEntry) -> None:
        from edgelite.convert.validate import collapsed_classes, validate_file

        x, y = self.test
        try:
            entry.metrics = validate_file(self.bundle.root / entry.path, entry.format, x, y, self.bundle.labels,
                                          self.bundle.input, self.ref_scores, self.reference["top1"])
        except Exception as e:  # ModelLoadError, a runtime refusing the file, a shape mismatch...
            self.log.detail(traceback.format_exc())
            self._fail(entry, "validation failed", _one_line(e))
            return
        m = entry.metrics
        self.log(f"{entry.name}: top-1 {m['top1']:.3f} ({m['delta']:+.1f} pts), agreement {m['agreement']:.3f}, "
                 f"max prob diff {m['max_prob_diff']:.4f}, {m['ms_per_image']:.2f} ms/img ({m['runtime']})")
        max_drop = self.settings.max_drop
        if max_drop is not None and m["delta"] is not None and -m["delta"] > max_drop:
            collapsed = collapsed_classes(m, self.reference, max_drop)
            what = (", ".join(f"{n} {a:.2f}->{b:.2f}" for n, a, b in collapsed) if collapsed
                    else "none individually; the loss is spread over all classes")
            msg = (f"{entry.name} lost {-m['delta']:.1f} top-1 points (float {self.reference['top1']:.3f} -> "
                   f"{m['top1']:.3f}, --max-drop {max_drop:g}); collapsed classes: {what}")
            entry.status, entry.error = "validation failed", msg
            m["collapsed"] = [n for n, _, _ in collapsed]
            self.gate_failures.append(msg)
            self.log(f"{entry.name}: GATE FAILED: {msg}")

    def _fail(self, entry: ModelEntry, status: str, error: str) -> ModelEntry:
        entry.status, entry.error = status, error
        self.log(f"{entry.name}: {status}: {error}")
        return self.bundle.add_file(entry)

    # ---- Edge TPU
    def edgetpu_reports(self) -> None:
        """Static compatibility report for every int8 model that exported (compiler or not)."""
        from edgelite.convert.edgetpu import compatibility, report_markdown

        reports = {}
        for m in self.bundle.models:
            if m.name in INT8_NAMES and m.path:
                try:
                    rep = compatibility((self.bundle.root / m.path).read_bytes(), m.name)
                except Exception as e:
                    self.log.detail(traceback.format_exc())
                    self.log(f"{m.name}: edgetpu compatibility report failed: {_one_line(e)}")
                    continue
                reports[m.name] = rep
                m.extra["edgetpu_compat"] = {k: rep[k] for k in ("compatible", "tpu_ops", "cpu_ops", "split")}
                self.log(f"{m.name}: Edge TPU static check: {rep['tpu_ops']}/{rep['ops_total']} ops would map"
                         + (f"; split at op {rep['split']['index']} {rep['split']['op']}" if rep["split"] else ""))
        if reports:
            (self.bundle.root / EDGETPU_COMPAT_JSON).write_text(json.dumps(reports, indent=1) + "\n")
            (self.bundle.root / EDGETPU_COMPAT_MD).write_text("\n".join(report_markdown(r) for r in reports.values()))
            self.compat = reports

    def export_edgetpu(self) -> ModelEntry:
        from edgelite.convert import edgetpu

        exp = EXPORTS["edgetpu"]
        entry = ModelEntry(name="edgetpu", path=None, format=exp.file_format, precision=exp.precision)
        ok = {m.name: m for m in self.bundle.models if m.status == "ok" and m.path}
        source = next((n for n in EDGETPU_SOURCE_PREFERENCE if n in ok), None)
        if source is None:
            return self._fail(entry, "skipped", "no int8 model passed export and validation to compile")
        entry.extra["source"] = source
        rep = self.compat.get(source)
        predicted = f"; static check predicts {rep['tpu_ops']}/{rep['ops_total']} ops on the Edge TPU" if rep else ""
        if edgetpu.find_compiler() is None:
            return self._fail(entry, "skipped", f"{edgetpu.COMPILER} not on PATH{predicted} ({EDGETPU_COMPAT_MD})")
        filename = Path(ok[source].path).stem + "_edgetpu.tflite"
        self.log(f"edgetpu: compiling {ok[source].path} with {edgetpu.COMPILER}")
        t = time.perf_counter()
        try:
            info = edgetpu.compile_model(self.bundle.root / ok[source].path, self.bundle.root / filename)
            from edgelite.convert.metadata import embed_metadata

            entry.quantization = ok[source].quantization
            p = self.bundle.root / filename
            p.write_bytes(embed_metadata(p.read_bytes(), self.metadata(entry)))
        except ConvertError as e:
            return self._fail(entry, "export failed", str(e))
        except Exception as e:
            self.log.detail(traceback.format_exc())
            return self._fail(entry, "export failed", _one_line(e))
        entry.path = filename
        entry.extra.update({"compiler": {k: v for k, v in info.items() if k != "log"},
                            "export_seconds": round(time.perf_counter() - t, 2)})
        self.log.detail(info.get("log", ""))
        self.bundle.add_file(entry)
        self.log(f"edgetpu: {info.get('tpu_ops')}/{info.get('ops_total')} ops mapped to the Edge TPU "
                 f"(compiler {info.get('compiler_version')})")
        from edgelite.device.runtime import ModelLoadError, load_edgetpu_delegate

        try:
            load_edgetpu_delegate()
        except ModelLoadError as e:
            entry.metrics = {"validated": False, "reason": str(e)}
            self.log(f"edgetpu: not validated here (no Edge TPU): the {source} model it was compiled from was")
            return entry
        self._validate(entry)
        return entry

    # ---- manifest info
    def finish_info(self, test_skipped: int) -> None:
        tf = import_tensorflow()

        root = self.bundle.root
        x, y = self.test
        np.savez_compressed(root / HELDOUT, images=x, labels=y.astype(np.int64))
        s = dataclasses.asdict(self.settings)
        s["calibration_images"] = int(len(self.calib)) if self.calib is not None else 0
        s["batch_size"] = self.batch
        env = {"python": platform.python_version(), "machine": platform.machine(), "tensorflow": tf.__version__}
        for mod in ("tf_keras", "tensorflow_model_optimization", "tf2onnx", "onnx", "onnxruntime", "ai_edge_litert"):
            m = sys.modules.get(mod)
            if m is not None:
                env[mod] = getattr(m, "__version__", "?")
        from edgelite import __version__

        self.bundle.info = {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "edgelite": __version__,
            "source": {"kind": self.src.kind, "path": str(self.src.path.resolve()), "backbone": self.src.backbone,
                       "data_dir": str(Path(self.src.data_dir).resolve())},
            "reference": {"model": "keras float", **{k: self.reference[k] for k in ("images", "top1", "per_class")}},
            "heldout": {"path": HELDOUT, "count": int(len(y)), "sha256": sha256_file(root / HELDOUT),
                        "skipped": int(test_skipped), "split": "test"},
            "settings": s,
            "optimisation": self.optimisation,
            "environment": env,
            "log": LOG_FILE,
        }
        if self.compat:
            self.bundle.info["edgetpu_compat"] = {"json": EDGETPU_COMPAT_JSON, "markdown": EDGETPU_COMPAT_MD}
        if self.src.notes:
            self.bundle.info["notes"] = list(self.src.notes)


# ------------------------------------------------------------------------------------------ helpers
def _check_out(out: Path, source: Path) -> None:
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


def _swap_in(stage: Path, out: Path) -> None:
    """Replace `out` by the freshly built `stage` (rename, not copy: nothing stale survives)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(e, 240)}" if str(e).strip() else type(e).__name__
