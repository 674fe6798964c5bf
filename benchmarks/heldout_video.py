"""What the held-out video costs: why `edgelite run BUNDLE --source heldout` scores below the top-1 that
convert and bench report for the same model on the same images.

    python benchmarks/heldout_video.py --bundle bundles/demo --formats qat_int8,int8,fp32

For each format: top-1 on the bundle's held-out images as stored (convert's and bench's figure) and on the
frames of the video `--source heldout` plays (MJPG at JPEG quality 95, each image enlarged 2x, nearest), both
through the device's own preprocessing, paired image by image (Δ with its 95 % interval, edgelite.stats).
It also checks that the 2x enlargement alone changes no model input (the loop's resize undoes it exactly),
so what the video costs is the JPEG compression. Writes benchmarks/results/heldout_video.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgelite.bundle import Bundle  # noqa: E402
from edgelite.device.loop import load  # noqa: E402
from edgelite.device.options import RunOptions  # noqa: E402
from edgelite.device.pipeline import Pipeline, prepare_bgr  # noqa: E402
from edgelite.device.video import write_video  # noqa: E402
from edgelite.stats import format_delta, paired_delta  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
SCALE = 2  # as edgelite.device.loop._heldout_source


def _video_frames(images: np.ndarray) -> list[np.ndarray]:
    path = write_video(Path(tempfile.mkdtemp(prefix="heldout-video-")) / "heldout.avi", images, scale=SCALE)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="bundles/demo")
    ap.add_argument("--formats", default="qat_int8,int8,fp32")
    args = ap.parse_args()
    bundle = Bundle.load(args.bundle)
    x, y = bundle.heldout()
    stored = [cv2.cvtColor(img, cv2.COLOR_RGB2BGR) for img in x]
    frames = _video_frames(x)
    if len(frames) != len(x):
        raise SystemExit(f"the video has {len(frames)} frames for {len(x)} images")
    h, w = x.shape[1:3]
    same = sum(np.array_equal(prepare_bgr(cv2.resize(b, (w * SCALE, h * SCALE), interpolation=cv2.INTER_NEAREST),
                                          bundle.input), prepare_bgr(b, bundle.input)) for b in stored)
    rows = []
    for fmt in args.formats.split(","):
        loaded = load(args.bundle, RunOptions(format=fmt))
        pipe = Pipeline(loaded.model, loaded.spec, loaded.labels)

        def hits(images, pipe=pipe):
            out = []
            for img in images:
                pipe.preprocess(img)
                out.append(int(np.argmax(pipe.infer_raw())))  # argmax: the same for raw uint8 and dequantized
            return np.asarray(out) == y

        a, v = hits(stored), hits(frames)
        d = paired_delta(v, a)
        rows.append({"format": loaded.name, "images": len(y), "top1_stored": float(a.mean()),
                     "top1_video": float(v.mean()), "delta": d["delta"], "delta_ci": d["ci"],
                     "gained": d["gained"], "lost": d["lost"]})
    result = {"bundle": str(args.bundle), "created": time.strftime("%Y-%m-%d"), "scale": SCALE, "jpeg_quality": 95,
              "upscale_identical_inputs": int(same), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "heldout_video.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# What the held-out video costs (`edgelite run BUNDLE --source heldout`)", "",
             f"`python benchmarks/heldout_video.py --bundle {args.bundle} --formats {args.formats}`, "
             f"{result['created']}.", "",
             "Top-1 on the bundle's held-out images as stored (convert's and bench's figure) and on the frames of "
             f"the video `--source heldout` plays (MJPG, JPEG quality 95, each image enlarged {SCALE}x), the same "
             "preprocessing and model; Δ = video − stored, paired image by image, 95 % interval.", "",
             "| format | images | top-1 stored | top-1 video | Δ [95 %] | gained / lost |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['format']} | {r['images']} | {r['top1_stored']:.3f} | {r['top1_video']:.3f} | "
                     f"{format_delta(r['delta'], r['delta_ci'])} | {r['gained']} / {r['lost']} |")
    lines += ["", f"The {SCALE}x enlargement alone leaves {same} of {len(x)} model inputs identical (the loop's "
              "bilinear resize undoes a nearest 2x exactly): the cost is the JPEG compression."]
    (RESULTS / "heldout_video.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
