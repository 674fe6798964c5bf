"""`edgelite convert`: argument definitions (no heavy imports) and a thin handler over the library."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  edgelite convert runs/demo --out bundles/demo
  edgelite convert runs/demo --out bundles/small --formats fp32,int8,onnx --prune 0.5
  edgelite convert runs/demo --out bundles/qat --formats int8,edgetpu --qat --qat-epochs 2
  edgelite convert runs/demo --out bundles/gated --formats int8 --max-drop 1.0
  edgelite convert model.keras --data photos/ --out bundles/m --formats int8 --per-tensor
  edgelite convert runs/demo --out bundles/tiny --formats pqat_int8 --prune 0.5 --prune-block 4 --prune-epochs 6 \
      --qat --per-tensor            # the smallest gzip (pqat_int8; pruned_int8 comes along, per-tensor PTQ)

formats: fp32 fp16 dynamic int8 onnx edgetpu (default: all); --prune adds pruned_int8, --qat adds
qat_int8 (pqat_int8 with --prune). edgetpu compiles the best int8 model (int8 is added when none is
asked for); without edgetpu_compiler on PATH it is skipped, and the static compatibility report
(edgetpu_compat.md) still says which ops would run on the Edge TPU and where the graph would split.

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
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="RUN_DIR", help="run directory (or a .keras model file with --data)")
    p.add_argument("--out", required=True, metavar="BUNDLE_DIR", help="bundle folder to write (replaced if it is a bundle)")
    p.add_argument("--formats", metavar="LIST", help="comma list: fp32,fp16,dynamic,int8,onnx,edgetpu (default: all)")
    p.add_argument("--prune", type=_fraction, metavar="SPARSITY", help="magnitude-prune to this sparsity (e.g. 0.5)")
    p.add_argument("--prune-epochs", type=int, default=3, metavar="N", help="fine-tuning epochs while pruning (default 3)")
    p.add_argument("--prune-block", type=int, default=1, metavar="N",
                   help="prune runs of N neighbouring weights (along input channels, as .tflite stores them): "
                        "the zeros then compress far better under gzip (default 1: unstructured)")
    p.add_argument("--qat", action="store_true", help="quantization-aware training (with --prune: sparsity-preserving)")
    p.add_argument("--qat-epochs", type=int, default=2, metavar="N", help="QAT epochs (default 2)")
    p.add_argument("--calibration", type=int, default=300, metavar="N",
                   help="training images for int8 calibration (default 300)")
    p.add_argument("--per-tensor", action="store_true",
                   help="one int8 scale per weight tensor (default per-channel); with --qat the training uses it too")
    p.add_argument("--io-type", choices=["uint8", "int8", "float32"], default="uint8",
                   help="input/output type of int8 models (default uint8: raw pixels, Edge TPU-ready)")
    p.add_argument("--max-drop", type=float, metavar="PTS",
                   help="fail (exit 3) when a format's top-1 is more than PTS points below the float model")
    p.add_argument("--data", metavar="DIR", help="image folder: for a .keras file, or when the run's data moved")
    p.add_argument("--trust-model", action="store_true",
                   help="load an HDF5 (.h5) model, which can run code stored in it: only for a file you made")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, <= 18 (default 17)")
    p.add_argument("--batch-size", type=int, metavar="N", help="fine-tuning batch size (default: the run's)")
    p.add_argument("--seed", type=int, default=0, help="calibration sample and fine-tuning seed (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output, only the table")
    p.set_defaults(func=_convert)


def _convert(args) -> int:
    from edgelite.convert.core import convert, failed_formats
    from edgelite.convert.errors import FormatsFailed
    from edgelite.convert.report import table

    bundle = convert(args.source, args.out, formats=args.formats, prune=args.prune, prune_epochs=args.prune_epochs,
                     prune_block=args.prune_block, qat=args.qat, qat_epochs=args.qat_epochs, calibration=args.calibration,
                     per_tensor=args.per_tensor, io_type=args.io_type, max_drop=args.max_drop, data=args.data,
                     opset=args.opset, batch_size=args.batch_size, seed=args.seed, verbose=not args.quiet,
                     trust_model=args.trust_model)
    if args.quiet:
        print(table(bundle))
    # a missing optional tool for a default format is 'skipped' (not a failure); anything else that failed is
    failed = failed_formats(bundle)
    if failed:
        raise FormatsFailed(f"{len(failed)} format(s) failed: " + "; ".join(f"{m.name} ({m.status}: {m.error})"
                                                                          for m in failed), bundle=bundle)
    return 0
