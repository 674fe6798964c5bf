"""`edgelite train` and `edgelite data`: argument definitions (light) and thin handlers.

Each flag's ``dest`` is a field of `TrainOptions` (`DataOptions`); the handler fills it with `from_namespace`.
The settings' flags default to None ("not given") so a --config YAML file can set what the flags leave out.
"""

from __future__ import annotations

import argparse

from edgelite.options import from_namespace
from edgelite.train.config import DataOptions, TrainConfig, TrainOptions

TRAIN_EXAMPLES = """examples:
  edgelite train photos/ --out runs/flowers
  edgelite train photos/ --out runs/small --backbone mobilenet_v2 --image-size 128 --epochs 5
  edgelite train photos/ --out runs/offline --backbone mobilenet_v2 --weights mobilenet_v2_notop.h5
  edgelite train --config train.yaml photos/ --out runs/a
  edgelite train photos/ --out runs/flowers --resume
"""


def _split_fraction(s: str) -> float:
    v = float(s)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"{s} is not a fraction in [0, 1)")
    return v


def _count(minimum: int):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{v} must be at least {minimum}")
        return v

    return parse


def register(sub) -> None:
    from edgelite.train.backbones import BACKBONES

    d = TrainConfig()  # the defaults the help names are the code defaults (YAML and flags override them)
    p = sub.add_parser("train", help="fine-tune a pretrained CNN on a folder of labelled photos",
                       description="Fine-tune a pretrained CNN on DATA_DIR/<class>/*.jpg. Phase 1 trains the head on "
                                   "a frozen backbone; phase 2 unfreezes the top blocks at a low learning rate.",
                       epilog=TRAIN_EXAMPLES)
    p.add_argument("data_dir", metavar="DATA_DIR", nargs="?", help="one sub-folder of images per class")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write (e.g. runs/NAME)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), help=f"default: {d.backbone}")
    p.add_argument("--image-size", type=int, metavar="PX", help="square input size (default: the backbone's)")
    p.add_argument("--epochs", type=int, help=f"phase-1 epochs, head only (default {d.epochs})")
    p.add_argument("--cached-views", type=int, metavar="K",
                   help="the frozen layers run once per image and augmented view (K views, the first unaugmented): "
                        "phase 1 trains the head on the pooled features, phase 2 the top blocks on the activations "
                        f"below them; 0 = the whole backbone every epoch (default {d.cached_views})")
    p.add_argument("--fine-tune-epochs", type=int, help=f"phase-2 epochs, top blocks unfrozen (default {d.fine_tune_epochs})")
    p.add_argument("--unfreeze", type=int, metavar="BLOCKS", help="backbone blocks unfrozen in phase 2 (default: the backbone's, e.g. 4 for efficientnet_lite0)")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, help=f"phase-1 learning rate (default {d.lr:g})")
    p.add_argument("--fine-tune-lr", type=float, help=f"phase-2 learning rate (default {d.fine_tune_lr:g})")
    p.add_argument("--label-smoothing", type=float, help=f"default {d.label_smoothing}")
    p.add_argument("--dropout", type=float, help=f"dropout before the classifier (default {d.dropout})")
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False,
                   help="no flips/crops/brightness during training")
    p.add_argument("--class-weights", choices=["auto", "none"], help=f"auto: balanced weights when classes are imbalanced (default {d.class_weights})")
    p.add_argument("--val-split", type=_split_fraction, help=f"default {d.val_split}")
    p.add_argument("--test-split", type=_split_fraction, help=f"default {d.test_split}")
    p.add_argument("--weights", metavar="imagenet|none|PATH", help=f"initial backbone weights (default {d.weights})")
    p.add_argument("--seed", type=int, help=f"split and training seed (default {d.seed})")
    p.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (default {d.patience})")
    p.add_argument("--interpolation", choices=["bilinear", "nearest", "area", "bicubic"],
                   help=f"resize used in training and recorded for the device (default {d.interpolation})")
    p.add_argument("--config", metavar="YAML", help="settings file; command-line flags override it")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run at --out (only ever a run folder)")
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"],
                   help="tf.distribute strategy; multiworker reads TF_CONFIG")
    p.set_defaults(func=_train)

    dd = DataOptions()
    d = sub.add_parser("data", help="materialise a demo dataset as an image folder",
                       description="Write a demo dataset as OUT_DIR/<class>/*.png (a second call with other settings replaces "
                                   "only the images it wrote).",
                       epilog="example:\n  edgelite data fashion-mnist data/fashion-mnist --per-class 300 --test-per-class 100")
    d.add_argument("dataset", choices=[dd.dataset])
    d.add_argument("out", metavar="OUT_DIR")
    d.add_argument("--per-class", type=_count(1), default=dd.per_class, help="images per class (default %(default)s)")
    d.add_argument("--test-per-class", type=_count(0), default=dd.test_per_class, metavar="N",
                   help="N held-out images per class from the dataset's own test split, listed in "
                        "OUT_DIR/heldout.txt as train's test split (default %(default)s: train splits)")
    d.add_argument("--size", type=_count(0), default=dd.size, metavar="PX", help="resize the 28x28 images (default: keep)")
    d.add_argument("--seed", type=int, default=dd.seed, help="which images are picked (default %(default)s)")
    d.add_argument("--source", default=dd.source, metavar="DIR", help="folder with the IDX .gz files "
                                                   "(default /usr/share/datasets/fashion-mnist, then download)")
    d.set_defaults(func=_data)


def _train(args) -> int:
    from edgelite.train.finetune import train

    options = from_namespace(TrainOptions, args)
    if not options.resume and not options.data_dir:
        from edgelite.errors import UsageError

        raise UsageError("DATA_DIR is required unless you --resume a run")
    train(options=options)
    return 0


def _data(args) -> int:
    from edgelite.train.demo_data import write_image_folder

    o = from_namespace(DataOptions, args)
    counts = write_image_folder(o.out, per_class=o.per_class, size=o.size, seed=o.seed, source_dir=o.source,
                                test_per_class=o.test_per_class)
    held = (f" ({o.per_class * len(counts)} to train, {o.test_per_class * len(counts)} held out: "
            f"{o.out}/heldout.txt)" if o.test_per_class else "")
    print(f"{sum(counts.values())} images in {len(counts)} classes under {o.out}{held}")
    return 0
