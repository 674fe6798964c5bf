"""`edgelite review`: argument definitions (no heavy imports) and a thin handler over edgelite.review.core."""

from __future__ import annotations

EXAMPLES = """examples:
  edgelite deploy --host pi@cam1.local --pull-frames frames/cam1
  edgelite review frames/ --data photos/                      # scores from the frames' names (--save-uncertain)
  edgelite review frames/ --data photos/ --run runs/demo      # scores from the run's own model
  edgelite review frames/ --data photos/ --labels cat,dog,empty
  edgelite review frames/ --data photos/ --http 0.0.0.0:8090 --token SECRET   # from another machine

keys: 1-9, 0 label (one per class, the first ten), x discard, s skip, u undo, arrows move, PageDown/PageUp next/previous page.
Labelled frames move to DATA_DIR/LABEL/ (provenance in DATA_DIR/review.csv); discarded ones wait in
FRAMES_DIR/.discarded/ until you press "delete discarded". Then retrain from the run's weights and roll out:
  edgelite review --data photos/ --run runs/demo --retrain runs/demo-2     # prints before/after per class
  edgelite convert runs/demo-2 --out bundles/demo-2 && edgelite deploy --host pi@cam1.local --bundle bundles/demo-2
"""


def register(sub) -> None:
    p = sub.add_parser("review", help="label the frames a device was unsure of, in a local web page",
                       description="Show the frames in FRAMES_DIR (from `run --save-uncertain`, `deploy "
                                   "--pull-frames` or `capture`) as a grid in a local web page, most uncertain "
                                   "first, and move each frame you label into DATA_DIR/LABEL/.",
                       epilog=EXAMPLES)
    p.add_argument("frames", metavar="FRAMES_DIR", nargs="?", help="folder of frames (searched recursively)")
    p.add_argument("--data", required=True, metavar="DATA_DIR", help="training photos, one sub-folder per class")
    p.add_argument("--run", metavar="RUN_DIR", help="score the frames with this run's model (its labels are the classes)")
    p.add_argument("--labels", metavar="A,B,...", help="classes to offer besides DATA_DIR's folders and the run's labels")
    p.add_argument("--http", default="127.0.0.1:8090", metavar="[HOST:]PORT", help="where the page is served "
                   "(default 127.0.0.1:8090; another address needs --token)")
    p.add_argument("--token", metavar="T", help="required on every request (default $EDGELITE_TOKEN)")
    p.add_argument("--retrain", metavar="NEW_RUN", help="instead of the page: fine-tune --run from its weights on the "
                   "frames labelled into DATA_DIR (review.csv) plus a sample of its training photos; 30%% of the "
                   "labelled frames are held out and scored before/after")
    p.add_argument("--epochs", type=int, default=5, metavar="N", help="--retrain: fine-tuning epochs (default 5)")
    p.add_argument("--overwrite", action="store_true", help="--retrain: replace an existing NEW_RUN")
    p.set_defaults(func=_review)


def _review(args) -> int:
    import os

    from edgelite.errors import UsageError, require_extra

    if args.retrain:
        if not args.run:
            raise UsageError("--retrain needs --run RUN_DIR: the run whose weights it starts from")
        if args.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        require_extra("train", ("tensorflow", "tf_keras"), what="--retrain")
        from edgelite.review.retrain import retrain

        retrain(args.run, args.data, args.retrain, epochs=args.epochs, overwrite=args.overwrite)
        return 0
    if not args.frames:
        raise UsageError("FRAMES_DIR is required (the folder of frames to review), unless you --retrain")
    from edgelite.review.core import serve

    serve(args.frames, args.data, run=args.run, labels=args.labels, http=args.http,
          token=args.token or os.environ.get("EDGELITE_TOKEN") or None)
    return 0
