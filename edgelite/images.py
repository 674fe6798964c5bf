"""The image file suffixes, and finding the images of a folder. Standard library only.

What a class folder (`train`, `bench --data`) and a folder source (`run --source DIR`) hold: what both
decoders read (Pillow in training, OpenCV on the device).

    >>> ".png" in IMAGE_SUFFIXES, ".txt" in IMAGE_SUFFIXES
    (True, False)
"""

from __future__ import annotations

from pathlib import Path

#: the suffixes of the image files edgelite reads (case-insensitive)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def find_images(folder: Path) -> list[Path]:
    """Every image file under `folder`, recursively and sorted; hidden files and folders are left out."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))
