"""`edgelite train` and `edgelite data`: argument definitions (light) and thin handlers."""

from __future__ import annotations

import argparse

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

    p = sub.add_parser("train", help="fine-tune a pretrained CNN on a folder of labelled photos",
                       description="Fine-tune a pretrained CNN on DATA_DIR/<class>/*.jpg. Phase 1 trains the head on "
                                   "a frozen backbone; phase 2 unfreezes the top blocks at a low learning rate.",
                       epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", metavar="DATA_DIR", nargs="?", help="one sub-folder of images per class")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write (e.g. runs/NAME)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), help="default: efficientnet_lite0")
    p.add_argument("--image-size", type=int, metavar="PX", help="square input size (default: the backbone's)")
    p.add_argument("--epochs", type=int, help="phase-1 epochs, head only (default 10)")
    p.add_argument("--fine-tune-epochs", type=int, help="phase-2 epochs, top blocks unfrozen (default 5)")
    p.add_argument("--unfreeze", type=int, metavar="BLOCKS", help="backbone blocks unfrozen in phase 2")
    p.add_argument("--batch-size", type=int, help="default 32")
    p.add_argument("--lr", type=float, help="phase-1 learning rate (default 1e-3)")
    p.add_argument("--fine-tune-lr", type=float, help="phase-2 learning rate (default 1e-4)")
    p.add_argument("--label-smoothing", type=float, help="default 0.1")
    p.add_argument("--dropout", type=float, help="dropout before the classifier (default 0.2)")
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False,
                   help="no flips/crops/brightness during training")
    p.add_argument("--class-weights", choices=["auto", "none"], help="auto: balanced weights when classes are imbalanced")
    p.add_argument("--val-split", type=_split_fraction, help="default 0.1")
    p.add_argument("--test-split", type=_split_fraction, help="default 0.1")
    p.add_argument("--weights", metavar="imagenet|none|PATH", help="initial backbone weights (default imagenet)")
    p.add_argument("--seed", type=int, help="split and training seed (default 0)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 3)")
    p.add_argument("--interpolation", choices=["bilinear", "nearest", "area", "bicubic"],
                   help="resize used in training and recorded for the device (default bilinear)")
    p.add_argument("--config", metavar="YAML", help="settings file; command-line flags override it")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing RUN_DIR")
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"],
                   help="tf.distribute strategy; multiworker reads TF_CONFIG")
    p.set_defaults(func=_train)

    d = sub.add_parser("data", help="materialise a demo dataset as an image folder",
                       description="Write a demo dataset as DATA_DIR/<class>/*.png.",
                       epilog="example:\n  edgelite data fashion-mnist data/fashion-mnist --per-class 300",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("dataset", choices=["fashion-mnist"])
    d.add_argument("out", metavar="OUT_DIR")
    d.add_argument("--per-class", type=_count(1), default=300, help="images per class (default 300)")
    d.add_argument("--size", type=_count(0), default=0, metavar="PX", help="resize the 28x28 images (default: keep)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--source", metavar="DIR", help="folder with the IDX .gz files "
                                                   "(default /usr/share/datasets/fashion-mnist, then download)")
    d.set_defaults(func=_data)


def _train(args) -> int:
    from edgelite.train.finetune import train

    keys = ["backbone", "image_size", "epochs", "fine_tune_epochs", "unfreeze", "batch_size", "lr", "fine_tune_lr",
            "label_smoothing", "dropout", "augment", "class_weights", "val_split", "test_split", "weights", "seed",
            "patience", "interpolation", "strategy"]
    if not args.resume and not args.data_dir:
        from edgelite.errors import UsageError

        raise UsageError("DATA_DIR is required unless you --resume a run")
    train(args.data_dir, args.out, config=args.config, resume=args.resume, overwrite=args.overwrite,
          **{k: getattr(args, k) for k in keys})
    return 0


def _data(args) -> int:
    from edgelite.train.demo_data import write_image_folder

    counts = write_image_folder(args.out, per_class=args.per_class, size=args.size, seed=args.seed,
                                source_dir=args.source)
    print(f"{sum(counts.values())} images in {len(counts)} classes under {args.out}")
    return 0
