"""The export loop's worker: builds each Keras model once (float, pruned, QAT), exports every format from
it the same way (timing, size, errors), embeds the metadata and validates the file; Edge TPU last.

A format that fails is marked ``export failed`` / ``validation failed`` (a tool missing for a format the
user did not name: ``skipped``) and the others go on; the traceback goes to convert.log only.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.bundle import Bundle, ModelEntry
from edgelite.convert.errors import ConvertError
from edgelite.convert.formats import EDGETPU_SOURCE_PREFERENCE, EXPORTS, EXTRAS, INT8_NAMES
from edgelite.convert.options import ConvertOptions
from edgelite.convert.progress import ProgressLog
from edgelite.errors import first_line

EDGETPU_COMPAT_JSON = "edgetpu_compat.json"
EDGETPU_COMPAT_MD = "edgetpu_compat.md"


@dataclasses.dataclass
class Job:
    """One conversion's shared state: the source, the images, the float reference and the bundle being filled."""

    src: Any
    options: ConvertOptions
    log: ProgressLog
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
        s = self.options
        try:
            if kind == "float":
                model = self.float_model
            elif kind == "pruned":
                from edgelite.convert.optimize.pruning import prune

                model, info = prune(self.src.load_model(), *self.train, sparsity=s.prune, epochs=s.prune_epochs,
                                    block=s.prune_block,
                                    batch_size=self.batch, lr=s.prune_lr, seed=s.seed, log=self.log)
                self.optimisation["prune"] = info
            elif kind == "qat":
                from edgelite.convert.optimize.qat import quantize_aware

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
            if need == "venv:imx500":
                from edgelite.convert.imx500 import find_venv, venv_dir

                if find_venv() is None:
                    return f"no IMX500 toolchain venv at {venv_dir()}: run `make imx500-venv`"
                continue
            if need.startswith("bin:"):
                if shutil.which(need[4:]) is None:
                    return f"{need[4:]} is not on PATH"
                continue
            try:
                importlib.import_module(need)
            except ImportError:
                return f"{need} is not installed (pip install 'edgelite[{EXTRAS[need]}]')"
        return None

    def describe(self, exp) -> str:
        """The format's description, with the images a calibrated one is calibrated on (not a fixed text:
        --calibration-data replaces the training split)."""
        if exp.quantization != "full_int8" or self.calib is None:
            return exp.description
        where = (f"--calibration-data {self.options.calibration_data}" if self.options.calibration_data is not None
                 else "the training split")
        return f"{exp.description}, calibrated on {len(self.calib)} images from {where}"

    def export(self, name: str) -> ModelEntry:
        exp = EXPORTS[name]
        entry = ModelEntry(name=name, path=None, format=exp.file_format, precision=exp.precision)
        missing = self._missing(exp.needs)
        if missing:
            entry.status = "export failed" if name in self.explicit else "skipped"
            entry.error = missing
            self.log(f"{name}: {entry.status}: {missing}")
            return self.bundle.add_file(entry)
        self.log(f"{name}: exporting ({self.describe(exp)})")
        t = time.perf_counter()
        path = self.bundle.root / exp.filename
        scores = None  # a format validated by its toolchain's own model (imx500: MCT's quantized Keras model)
        try:
            model = self.model_for(exp.source)
            if exp.file_format == "imx500":
                scores = self._write_imx500(entry, model, path)
            elif exp.file_format == "onnx" and exp.quantization == "full_int8":
                self._write_onnx_int8(entry, model, path)
            elif exp.file_format == "onnx":
                from edgelite.convert.onnx_export import export_onnx

                entry.extra["onnx"] = export_onnx(model, path, opset=self.options.opset)
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
        self._validate(entry, scores)
        return entry

    def auto_qat(self) -> bool:
        """--auto-qat: when post-training int8 lost more than the threshold (or --max-drop), quantization-aware
        train and add qat_int8 (the device prefers it). Kept only when it scores above int8; a --max-drop miss
        of int8 no longer fails the conversion when qat_int8 passes. True when qat_int8 was kept."""
        s = self.options
        limit = s.auto_qat if s.max_drop is None or s.auto_qat is None else min(s.auto_qat, s.max_drop)
        int8 = next((m for m in self.bundle.models if m.name == "int8"), None)
        if (limit is None or s.qat or s.prune is not None or int8 is None or not int8.metrics
                or int8.metrics.get("delta") is None or -int8.metrics["delta"] <= limit):
            return False
        lost = -int8.metrics["delta"]
        self.log(f"int8 lost {lost:.1f} top-1 points (more than {limit:g}): quantization-aware training too "
                 "(--no-auto-qat to skip)")
        if self.train[0] is None:
            x, y, _ = self.src.images("train")
            self.train = (x, y)
        if not len(self.train[1]):
            self.log("auto QAT: no readable training images; keeping post-training int8")
            return False
        qat = self.export("qat_int8")
        kept = qat.status == "ok" and bool(qat.metrics) and qat.metrics["top1"] > int8.metrics["top1"]
        if "qat" in self.optimisation:  # (not when QAT itself failed)
            self.optimisation["qat"]["auto"] = {"int8_delta": int8.metrics["delta"], "threshold": limit, "kept": kept}
        if qat.status != "ok" or not qat.metrics:
            return False
        if not kept:
            (self.bundle.root / qat.path).unlink(missing_ok=True)
            qat.path, qat.status = None, "skipped"
            qat.error = f"auto QAT scored {qat.metrics['top1']:.3f}, not above int8's {int8.metrics['top1']:.3f}"
            self.log(f"qat_int8: not kept: {qat.error}")
            return False
        if int8.error in self.gate_failures:  # the device runs qat_int8, which passed
            self.gate_failures.remove(int8.error)
            self.log("int8's --max-drop miss is covered: qat_int8 passed and the device prefers it")
        self.log(f"qat_int8 kept: the device runs it (top-1 {qat.metrics['top1']:.3f} against int8's "
                 f"{int8.metrics['top1']:.3f})")
        return True

    def _write_tflite(self, entry: ModelEntry, model, exp, path: Path) -> None:
        from edgelite.convert.metadata import embed_metadata
        from edgelite.convert.tflite import io_quantization, to_tflite, weight_sparsity

        s = self.options
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

    def _write_imx500(self, entry: ModelEntry, model, path: Path) -> np.ndarray:
        """MCT + imx500-converter in their own venv -> packerOut.zip; returns the quantized model's held-out scores."""
        import edgelite.convert.imx500 as imx500
        from edgelite.device.preprocess import prepare_rgb

        spec = self.bundle.input
        test = np.stack([prepare_rgb(img, spec) for img in self.test[0]])
        calib = self.calib.copy()  # as int8 calibrates: raw pixels, the input range pinned to [0, 255]
        calib[0].reshape(-1, 3)[:2] = ((0, 0, 0), (255, 255, 255))
        out = imx500.export(model, calib, test, path, self.log)
        entry.extra["imx500"] = out["extra"]
        # the model the venv's Keras 2.15 loaded is ours: its float scores match the reference's
        entry.extra["imx500"]["float_max_diff"] = round(float(np.abs(out["float_scores"] - self.ref_scores).max()), 6)
        memory = out["extra"]["converter"].get("memory") or {}
        entry.quantization = {"input": {"dtype": "uint8", "scale": 1.0, "zero_point": 0}, "raw_pixels": True}
        if memory.get("fits") is False:
            self.log(f"imx500: the network does NOT fit the sensor's memory ({memory.get('used')} of "
                     f"{memory.get('available')}): choose a smaller backbone or input size")
        elif memory:
            self.log(f"imx500: fits the sensor's memory ({memory.get('used')} of {memory.get('available')})")
        return out["scores"]

    def _write_onnx_int8(self, entry: ModelEntry, model, path: Path) -> None:
        """The fp32 ONNX export (the bundle's model.onnx when it is there), then onnxruntime's static QDQ."""
        import tempfile

        from edgelite.convert.onnx_export import export_onnx, quantize_onnx

        fp32 = next((self.bundle.root / m.path for m in self.bundle.models
                     if m.name == "onnx" and m.status == "ok" and m.path), None)
        with tempfile.TemporaryDirectory(dir=self.bundle.root) as tmp:
            if fp32 is None:
                fp32 = Path(tmp) / "fp32.onnx"
                entry.extra["onnx"] = export_onnx(model, fp32, opset=self.options.opset)
            entry.extra["onnx_int8"] = quantize_onnx(fp32, path, self.calib, per_channel=not self.options.per_tensor)

    def metadata(self, entry: ModelEntry) -> dict[str, Any]:
        return {"labels": list(self.bundle.labels), "input": self.bundle.input.to_dict(), "model": entry.name,
                "precision": entry.precision, "format": entry.format, "quantization": entry.quantization,
                "source": str(self.src.path.name), "backbone": self.src.backbone}

    def _validate(self, entry: ModelEntry, scores: np.ndarray | None = None) -> None:
        """Held-out metrics of the file (the device's runtime), or of `scores` a toolchain's model gave."""
        from edgelite.convert.validate import collapsed_classes, scored_metrics, validate_file
        from edgelite.stats import format_delta

        x, y = self.test
        try:
            if scores is not None:
                entry.metrics = scored_metrics(scores, y, self.bundle.labels, self.ref_scores, self.reference["top1"])
                entry.metrics.update(ms_per_image=None, runtime=entry.extra.get("imx500", {}).get("validated_with"))
            else:
                entry.metrics = validate_file(self.bundle.root / entry.path, entry.format, x, y, self.bundle.labels,
                                              self.bundle.input, self.ref_scores, self.reference["top1"])
        except Exception as e:  # ModelLoadError, a runtime refusing the file, a shape mismatch...
            self.log.detail(traceback.format_exc())
            self._fail(entry, "validation failed", _one_line(e))
            return
        m = entry.metrics
        self.log(f"{entry.name}: top-1 {m['top1']:.3f} ({format_delta(m['delta'], m.get('delta_ci'))} pts), agreement {m['agreement']:.3f}, "
                 f"max prob diff {m['max_prob_diff']:.4f}"
                 + (f", {m['ms_per_image']:.2f} ms/img" if m["ms_per_image"] is not None else "") + f" ({m['runtime']})")
        max_drop = self.options.max_drop
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
        import edgelite.convert.edgetpu as edgetpu

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


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(e, 240)}" if str(e).strip() else type(e).__name__
