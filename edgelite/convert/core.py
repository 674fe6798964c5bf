"""`convert`: a training run -> a validated bundle (TFLite fp32/fp16/dynamic/int8, pruned, QAT, ONNX, Edge TPU).
(The example needs TensorFlow and a training run: skipped as a doctest.)

    >>> from edgelite.convert import convert                                          # doctest: +SKIP
    >>> b = convert("runs/demo", "bundles/demo", formats="fp32,int8,onnx", prune=0.5)  # doctest: +SKIP
    >>> b.entry("int8").metrics["top1"], b.entry("pruned_int8").extra["sparsity"]      # doctest: +SKIP

This module is the flow: options -> formats -> the run's images -> the float reference -> every export
(`edgelite.convert.exporters`) -> the manifest and the swap into place (`edgelite.convert.writer`).
Every export is wrapped the same way (timing, size, errors): a format that fails is marked
``export failed`` / ``validation failed`` in the table and the manifest, and the others go on. The
bundle is built in a temporary folder next to ``out`` and swapped in at the end, so a re-run never
keeps a stale file and a crash never leaves half a bundle.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.bundle import Bundle, ModelEntry
from edgelite.convert.errors import ConvertError, GateFailed
from edgelite.convert.exporters import Job
from edgelite.convert.formats import CALIBRATED, EXPORTS, INT8_NAMES, parse_formats, require_one_installed
from edgelite.convert.options import ConvertOptions
from edgelite.convert.progress import ProgressLog
from edgelite.convert.writer import check_out, finish_info, new_stage, save_and_swap_in


def convert(source: str | os.PathLike, out: str | os.PathLike, options: ConvertOptions | None = None,
            **fields: Any) -> Bundle:
    """Convert a run directory (or a .keras file with ``data=``) into a validated bundle at `out`.

    `options` is a :class:`~edgelite.convert.options.ConvertOptions`; keyword `fields` (the same names:
    formats, prune, prune_epochs, prune_block, qat, qat_epochs, calibration, per_tensor, io_type, max_drop,
    data, opset, batch_size, prune_lr, qat_lr, seed, verbose, trust_model) replace its values.

    formats: comma list or sequence of fp32, fp16, dynamic, int8, onnx, edgetpu (default: all six), and
    onnx_int8, imx500 (only when named);
    prune: target sparsity (adds ``pruned_int8``), in runs of `prune_block` weights; qat: quantization-aware
    training (adds ``qat_int8``, or ``pqat_int8`` together with prune); per_tensor: one scale per weight
    tensor, for post-training int8 and QAT alike. Returns the saved Bundle. Raises ConvertError for a
    user error, GateFailed when `max_drop` is exceeded (the bundle is still written; ``.bundle``).
    Formats that fail are marked in the bundle; check ``bundle.models[i].status``.
    """
    opts = ConvertOptions.make(options, **fields).check()
    log = ProgressLog(opts.verbose)
    names = parse_formats(opts.formats, prune=opts.prune, qat=opts.qat)
    explicit = set(names) if opts.formats is not None else {n for n in names if n in INT8_NAMES[1:]}
    if opts.formats is not None:
        require_one_installed(names)
    if "edgetpu" in names and not any(n in names for n in INT8_NAMES):
        names.insert(names.index("edgetpu"), "int8")
        log("edgetpu is compiled from an int8 model: adding int8")
    out = Path(out)
    keep = check_out(out, Path(source), opts.overwrite)

    from edgelite.convert.source import open_source

    src = open_source(source, opts.data, trust_model=opts.trust_model)
    log(f"converting {src.path} ({src.backbone or 'keras model'}, {src.spec.height}x{src.spec.width}, "
        f"{len(src.labels)} classes) -> {out}: {', '.join(names)}")
    for note in src.notes:
        log(f"note: {note}")
    batch = opts.batch_size or src.batch_size

    # ---- images: held-out test split for validation; training split for calibration / fine-tuning
    test_x, test_y, test_skipped = src.images("test")
    if not len(test_y):
        raise ConvertError(f"no readable held-out (test) images in {src.data_dir}; the validator needs some — "
                           "re-train with --test-split > 0")
    needs_training = opts.prune is not None or opts.qat
    needs_calibration = needs_training or any(EXPORTS[n].quantization in CALIBRATED for n in names)
    rng = np.random.default_rng(opts.seed)
    train_x = train_y = calib = None
    if needs_training:
        train_x, train_y, _ = src.images("train")
        calib = train_x[rng.permutation(len(train_y))[:opts.calibration]]
    elif needs_calibration and opts.calibration_data is None:
        idx = rng.permutation(len(src.split.train))[:opts.calibration]
        calib, _, _ = src.images("train", np.sort(idx))
    if opts.calibration_data is not None:
        if not needs_calibration:
            raise ConvertError("--calibration-data is for int8 formats (int8, pruned_int8, qat_int8, edgetpu, imx500); "
                               "add one to --formats or drop it")
        from edgelite.convert.calibration_data import calibration_images

        calib, _ = calibration_images(opts.calibration_data, src.spec, opts.calibration, opts.seed)
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

    stage = new_stage(out)
    try:
        bundle = Bundle(root=stage, labels=list(src.labels), input=src.spec, models=[], info={})
        job = Job(src=src, options=opts, log=log, bundle=bundle, float_model=float_model, calib=calib,
                  train=(train_x, train_y), test=(test_x, test_y), ref_scores=ref_scores, reference=reference,
                  batch=batch, explicit=explicit)
        for name in list(names):
            if name != "edgetpu":
                job.export(name)
            if name == "int8" and job.auto_qat():
                names.insert(names.index("int8") + 1, "qat_int8")
        job.edgetpu_reports()
        if "edgetpu" in names:
            job.export_edgetpu()
        finish_info(job, names, test_skipped)
        if keep:
            log(f"kept in {out} (not written by convert): {', '.join(keep)}")
        save_and_swap_in(bundle, log.lines, out, keep)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    failures = job.gate_failures
    from edgelite.convert.report import table

    if opts.verbose:
        print(f"\nbundle {out} ({len(test_y)} held-out images; Δ top-1 in points vs the float Keras model)")
        print(table(bundle), flush=True)
    if failures:
        raise GateFailed("; ".join(failures), bundle=bundle, failures=[f.split(" ", 1)[0] for f in failures])
    return bundle


def failed_formats(bundle: Bundle) -> list[ModelEntry]:
    """Entries that failed to export or validate. Skipped ones (a tool missing for a format the user did
    not name, no edgetpu_compiler) are not failures."""
    return [m for m in bundle.models if m.status in ("export failed", "validation failed")]

