"""`edgelite adapt`: argument definitions (no heavy imports) and a thin handler over edgelite.adapt.core."""

from __future__ import annotations

EXAMPLES = """examples:
  edgelite adapt runs/demo --unlabeled frames/ --out runs/demo-cam                  # bn (default)
  edgelite adapt runs/demo --unlabeled frames/ --out runs/demo-cam --eval labelled/ # + top-1 before/after
  edgelite adapt runs/demo --unlabeled frames/ --out runs/demo-tent --method tent --steps 40 --lr 1e-3
  edgelite adapt runs/demo --unlabeled frames/ --out runs/demo-pl --method pseudo --threshold 0.8

then, as for any run:
  edgelite convert runs/demo-cam --out bundles/demo-cam --formats int8 --calibration-data frames/

methods: bn     BatchNorm statistics matched layer by layer to the unlabeled images (weights unchanged)
         tent   bn, then entropy minimisation on BatchNorm scale/offset only (--steps, --lr)
         pseudo bn, then a short head + top-block fine-tune on confident predictions (--threshold,
                --epochs); the pseudo-labels are listed in RUN/pseudo_labels.csv
The source run is never modified; --out is a new run directory of the same shape.
"""


def register(sub) -> None:
    p = sub.add_parser("adapt", help="adapt a trained run to the device's camera from unlabeled frames",
                       description="Domain adaptation: adapt RUN_DIR (from `edgelite train`) to the images in "
                                   "--unlabeled (frames from the device's camera, no labels) and write a new run "
                                   "directory that convert, bench and deploy take unchanged.",
                       epilog=EXAMPLES)
    p.add_argument("source", metavar="RUN_DIR", help="run directory written by `edgelite train`")
    p.add_argument("--unlabeled", required=True, metavar="DIR", help="folder of target-domain images (searched recursively)")
    p.add_argument("--out", required=True, metavar="RUN_DIR2", help="new run directory to write")
    p.add_argument("--method", choices=["bn", "tent", "pseudo"], default="bn", help="default bn")
    p.add_argument("--eval", dest="eval_dir", metavar="DIR",
                   help="labelled target images (DIR/<class>/*): top-1 per class before/after with 95 %% intervals")
    p.add_argument("--data", metavar="DIR", help="the training photos, when they moved since `edgelite train`")
    p.add_argument("--steps", type=int, default=40, metavar="N", help="tent: optimisation steps (default 40)")
    p.add_argument("--lr", type=float, help="learning rate (tent default 1e-3, pseudo 1e-4)")
    p.add_argument("--diversity", type=float, default=1.0,
                   help="tent: weight of the mean-prediction entropy term that prevents collapse (0 = plain tent; default 1)")
    p.add_argument("--threshold", type=float, default=0.8, help="pseudo: confidence needed to become a label (default 0.8)")
    p.add_argument("--epochs", type=int, default=5, metavar="N", help="pseudo: fine-tuning epochs (default 5)")
    p.add_argument("--batch-size", type=int, metavar="N", help="default: the run's")
    p.add_argument("--max-images", type=int, metavar="N", help="use a seeded sample of at most N unlabeled images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    p.set_defaults(func=_adapt)


def _adapt(args) -> int:
    from edgelite.adapt.core import adapt

    result = adapt(args.source, args.unlabeled, args.out, method=args.method, eval_dir=args.eval_dir, data=args.data,
                   overwrite=args.overwrite, steps=args.steps, lr=args.lr, diversity=args.diversity,
                   threshold=args.threshold, epochs=args.epochs, batch_size=args.batch_size,
                   max_images=args.max_images, seed=args.seed, verbose=not args.quiet)
    if args.quiet:
        r = result.report
        ev = "".join(f", --eval top-1 {r['before']['eval']['top1']:.3f} -> {r['after']['eval']['top1']:.3f}"
                     for _ in [0] if "eval" in r["after"])
        print(f"{result.path}: {r['method']} on {r['images']} images in {r['seconds']:.0f} s{ev}")
    return 0
