"""`edgelite convert`: argument definitions (no heavy imports) and a thin handler over the library.

Each flag's ``dest`` is a field of `ConvertOptions`; the handler fills it with `from_namespace`.
"""

from __future__ import annotations

import argparse

from edgelite.convert.formats import IO_TYPES
from edgelite.convert.options import ConvertOptions
from edgelite.options import from_namespace

EXAMPLES = """examples:
  edgelite convert runs/demo --out bundles/demo
  edgelite convert runs/demo --out bundles/demo --overwrite    # again: replaces what convert wrote, keeps bench/
  edgelite convert runs/demo --out bundles/small --formats fp32,int8,onnx --prune 0.5
  edgelite convert runs/demo --out bundles/qat --formats int8,edgetpu --qat --qat-epochs 2
  edgelite convert runs/demo --out bundles/gated --formats int8 --max-drop 1.0
  edgelite convert model.keras --data photos/ --out bundles/m --formats int8 --per-tensor
  edgelite convert runs/demo --out bundles/cam --formats int8,imx500   # the AI Camera (needs make imx500-venv)
  edgelite convert runs/demo --out bundles/tiny --formats pqat_int8 --prune 0.5 --prune-block 4 --prune-epochs 6 \\
      --qat --per-tensor            # the smallest gzip (pqat_int8; pruned_int8 comes along, per-tensor PTQ)

formats: fp32 fp16 dynamic int8 onnx edgetpu (default: all); --prune adds pruned_int8, --qat adds
qat_int8 (pqat_int8 with --prune); imx500 (the Raspberry Pi AI Camera: packerOut.zip from Sony's MCT and
imx500-converter, in their own venv: `make imx500-venv`) only when named. edgetpu compiles the best int8 model (int8 is added when none is
asked for); without edgetpu_compiler on PATH it is skipped, and the static compatibility report
(edgetpu_compat.md) still says which ops would run on the Edge TPU and where the graph would split.
When int8 loses more than --auto-qat points (default 0.5) to the float model on the held-out images, convert
quantization-aware trains as well (like --qat) and adds qat_int8; --no-auto-qat keeps to post-training int8.

exit codes: 0 ok, 1 a requested format failed (the others are in the bundle), 2 usage/input error,
3 --max-drop gate failed (the bundle is written; the failing models are marked)
"""


def _fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if v >= 1.0 and v < 100.0:  # "--prune 50" means 50 %
        v = v / 100.0
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{s} is not a sparsity in (0, 1), e.g. 0.5")
    return v


def register(sub) -> None:
    p = sub.add_parser("convert", help="prune, quantize and export a trained model into a validated bundle",
                       description="Convert a run directory from `edgelite train` (or a .keras file with --data) into "
                                   "a bundle of TFLite / Edge TPU / ONNX models, each validated on the held-out split "
                                   "with the device's own runtime and preprocessing.",
                       epilog=EXAMPLES)
    p.add_argument("source", metavar="RUN_DIR", help="run directory (or a .keras model file with --data)")
    p.add_argument("--out", required=True, metavar="BUNDLE_DIR", help="bundle folder to write (an existing bundle only with --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the bundle at --out (files convert did not write there, e.g. bench/, are kept)")
    d = ConvertOptions()  # the flags' defaults are the dataclass's: one declaration
    p.add_argument("--formats", metavar="LIST", help="comma list of fp32,fp16,dynamic,int8,onnx,edgetpu (the default: all of these) "
                   "and onnx_int8 (onnxruntime static QDQ int8), imx500 (Raspberry Pi AI Camera; make imx500-venv): "
                   "only when named")
    p.add_argument("--prune", type=_fraction, metavar="SPARSITY", help="magnitude-prune to this sparsity (e.g. 0.5)")
    p.add_argument("--prune-epochs", type=int, default=d.prune_epochs, metavar="N",
                   help="fine-tuning epochs while pruning (default %(default)s)")
    p.add_argument("--prune-block", type=int, default=d.prune_block, metavar="N",
                   help="prune runs of N neighbouring weights (along input channels, as .tflite stores them): "
                        "the zeros then compress far better under gzip (default %(default)s: unstructured)")
    p.add_argument("--prune-lr", type=float, default=d.prune_lr, metavar="LR",
                   help="learning rate while pruning (default %(default)g)")
    p.add_argument("--qat", action="store_true", help="quantization-aware training (with --prune: sparsity-preserving)")
    p.add_argument("--qat-epochs", type=int, default=d.qat_epochs, metavar="N", help="QAT epochs (default %(default)s)")
    p.add_argument("--qat-lr", type=float, default=d.qat_lr, metavar="LR",
                   help="quantization-aware training learning rate (default %(default)g)")
    qat = p.add_mutually_exclusive_group()
    qat.add_argument("--auto-qat", type=float, default=d.auto_qat, metavar="PTS",
                     help="when post-training int8 loses more than PTS top-1 points (or more than --max-drop), "
                          "quantization-aware train too and add qat_int8, which the device then runs "
                          "(default %(default)s)")
    qat.add_argument("--no-auto-qat", dest="auto_qat", action="store_const", const=None,
                     help="never quantization-aware train unless --qat says so")
    p.add_argument("--calibration", type=int, default=d.calibration, metavar="N",
                   help="training images for int8 calibration (default %(default)s)")
    p.add_argument("--calibration-data", metavar="DIR",
                   help="calibrate int8 on images from the target camera (DIR searched recursively) instead of "
                        "the training split")
    p.add_argument("--per-tensor", action="store_true",
                   help="one int8 scale per weight tensor (default per-channel); with --qat the training uses it too")
    p.add_argument("--io-type", choices=IO_TYPES, default=d.io_type,
                   help="input/output type of int8 models (default %(default)s: raw pixels, Edge TPU-ready)")
    p.add_argument("--max-drop", type=float, metavar="PTS",
                   help="fail (exit 3) when a format's top-1 is more than PTS points below the float model")
    p.add_argument("--data", metavar="DIR", help="image folder: for a .keras file, or when the run's data moved")
    p.add_argument("--trust-model", action="store_true",
                   help="load an HDF5 (.h5) model, which can run code stored in it: only for a file you made")
    p.add_argument("--opset", type=int, default=d.opset, help="ONNX opset, <= 18 (default %(default)s)")
    p.add_argument("--batch-size", type=int, metavar="N", help="fine-tuning batch size (default: the run's)")
    p.add_argument("--seed", type=int, default=d.seed, help="calibration sample and fine-tuning seed (default %(default)s)")
    p.add_argument("-q", "--quiet", dest="verbose", action="store_false", help="no progress output, only the table")
    p.set_defaults(func=_convert)


def _convert(args) -> int:
    from edgelite.convert.core import convert, failed_formats
    from edgelite.convert.errors import FormatsFailed
    from edgelite.convert.report import table

    options = from_namespace(ConvertOptions, args)
    bundle = convert(args.source, args.out, options)
    if not options.verbose:
        print(table(bundle))
    # a missing optional tool for a default format is 'skipped' (not a failure); anything else that failed is
    failed = failed_formats(bundle)
    if failed:
        raise FormatsFailed(f"{len(failed)} format(s) failed: " + "; ".join(f"{m.name} ({m.status}: {m.error})"
                                                                          for m in failed), bundle=bundle)
    return 0
