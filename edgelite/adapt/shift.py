"""A synthetic camera: the domain shift the tests and `benchmarks/adapt_demo.py` adapt to (numpy + cv2 only).

A different sensor and lens in one function: another resize filter (nearest instead of the
training bilinear), lens blur, a colour cast (white balance), gamma (tone curve) and sensor noise.
`shifted_domain` turns a labelled folder of held-out photos into the two disjoint target folders
`edgelite adapt` takes: an unlabeled folder (no class sub-folders) and a labelled --eval folder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class CameraShift:
    size: int  # the model's input size: images are resized to it with `resize`
    resize: str = "nearest"
    blur_sigma: float = 1.0
    cast: tuple[float, float, float] = (1.25, 0.95, 0.7)  # RGB gains
    gamma: float = 0.6  # < 1 brightens the mid-tones
    noise_sigma: float = 12.0

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 HxWx3 RGB -> uint8 size x size x 3 RGB as the other camera would deliver it."""
        from edgelite.device.preprocess import resize

        img = resize(rgb, self.size, self.size, self.resize).astype(np.float32)
        if self.blur_sigma > 0:
            import cv2

            img = cv2.GaussianBlur(img, (0, 0), self.blur_sigma)
        img = img * np.asarray(self.cast, np.float32)
        img = 255.0 * np.power(np.clip(img, 0, 255) / 255.0, self.gamma)
        img = img + rng.normal(0.0, self.noise_sigma, img.shape).astype(np.float32)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def shifted_domain(heldout: str | os.PathLike, unlabeled: str | os.PathLike, labelled: str | os.PathLike,
                   shift: CameraShift, *, eval_fraction: float = 0.5, seed: int = 0) -> dict[str, int]:
    """Shift every image of heldout/<class>/*; per class, `eval_fraction` goes to labelled/<class>/, the rest to
    unlabeled/ (flat, class names removed from the file names). The two never share an image."""
    import cv2

    from edgelite.images import find_images
    from edgelite.train.data import decode_rgb

    rng = np.random.default_rng(seed)
    src, unl, lab = Path(heldout), Path(unlabeled), Path(labelled)
    unl.mkdir(parents=True, exist_ok=True)
    counts = {"unlabeled": 0, "labelled": 0}
    n = 0
    for class_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        files = find_images(class_dir)
        order = rng.permutation(len(files))
        n_eval = int(round(len(files) * eval_fraction))
        for rank, i in enumerate(order):
            img = shift(decode_rgb(files[i]), rng)
            if rank < n_eval:
                dest = lab / class_dir.name / f"{files[i].stem}.png"
                dest.parent.mkdir(parents=True, exist_ok=True)
                counts["labelled"] += 1
            else:
                dest = unl / f"frame_{n:05d}.png"
                n += 1
                counts["unlabeled"] += 1
            cv2.imwrite(str(dest), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return counts
