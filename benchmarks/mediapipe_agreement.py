"""MediaPipe Tasks' ImageClassifier vs LiteRT on a bundle's held-out images: does an outside reader of our
standard TFLite Metadata see the same labels and the same top-1?

    python benchmarks/mediapipe_agreement.py --bundle bundles/demo [--formats fp32,fp16,int8]

MediaPipe runs in its own venv (scripts/mediapipe_client.py setup; built once in ~/.cache/edgelite).
Writes benchmarks/results/mediapipe_agreement.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLIENT = ROOT / "scripts" / "mediapipe_client.py"


def main() -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(ROOT / "bundles/demo"))
    ap.add_argument("--formats", default="fp32,fp16,int8")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    ap.add_argument("--note", default="", help="how the bundle was made (a line in the result table)")
    args = ap.parse_args()
    from edgelite.bundle import Bundle
    from edgelite.device.runtime import load_from_bundle

    r = subprocess.run([sys.executable, str(CLIENT), "setup"], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr.strip(), file=sys.stderr)
        return 1
    mp_python = r.stdout.strip()
    b = Bundle.load(args.bundle)
    x, y = b.heldout()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "heldout.npz"
        np.savez(npz, images=x)
        for name in args.formats.split(","):
            entry = b.entry(name)
            out = subprocess.run([mp_python, str(CLIENT), "classify", str(b.root / entry.path), str(npz)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{name}: MediaPipe failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            mp = json.loads(out.stdout)
            model, _ = load_from_bundle(b, name)
            litert = np.array([int(model.classify(img).argmax()) for img in x])
            mp_top1 = np.array([t[0] for t in mp["top1"]])
            names_ok = all(t[1] == b.labels[t[0]] for t in mp["top1"]) and \
                {int(k): v for k, v in mp["names"].items()} == dict(enumerate(b.labels))
            rows.append({"format": name, "images": len(x), "mediapipe_top1": round(float((mp_top1 == y).mean()), 4),
                         "litert_top1": round(float((litert == y).mean()), 4),
                         "agreement": round(float((mp_top1 == litert).mean()), 4), "labels_by_name": names_ok,
                         "mediapipe": mp["mediapipe"]})
            print(rows[-1], flush=True)
    res = Path(args.out)
    res.mkdir(parents=True, exist_ok=True)
    (res / "mediapipe_agreement.json").write_text(json.dumps({"bundle": args.bundle, "rows": rows}, indent=2) + "\n")
    lines = ["# MediaPipe ImageClassifier vs LiteRT on the held-out images", "",
             f"`python benchmarks/mediapipe_agreement.py --bundle {args.bundle}` — MediaPipe {rows[0]['mediapipe']} "
             "(own venv) reads the labels from the file's standard TFLite Metadata; LiteRT is edgelite's device runtime.",
             "", *([args.note, ""] if args.note else []), "| format | images | MediaPipe top-1 | LiteRT top-1 | top-1 agreement | labels by name |",
             "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r['format']} | {r['images']} | {r['mediapipe_top1']:.4f} | {r['litert_top1']:.4f} | "
              f"{r['agreement']:.4f} | {'yes' if r['labels_by_name'] else 'NO'} |" for r in rows]
    (res / "mediapipe_agreement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
