"""`edgelite review`: open a frames folder for review (scan, index, scores, decisions) and serve the page.

    >>> from edgelite.review.core import open_review                                   # doctest: +SKIP
    >>> store = open_review("frames/", "photos/", labels="cat,dog")                      # doctest: +SKIP
    >>> store.decide(store.index.order[0], "label", "cat")                               # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from edgelite.review.errors import ReviewError
from edgelite.review.frames import check_label, classes_of, match_labels, scan
from edgelite.review.index import Index
from edgelite.review.store import Store

WARM = 500  # thumbnails made in the background at start: the first page or two


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_folders(frames: Path, data: Path) -> None:
    if not frames.is_dir():
        raise ReviewError(f"{frames} is not a folder; pass the folder of frames (e.g. from `edgelite deploy "
                          "--pull-frames DIR`)")
    if data.exists() and not data.is_dir():
        raise ReviewError(f"--data {data} is a file; pass the folder of training photos (one sub-folder per class)")
    f, d = frames.resolve(), data.resolve()
    if f == d or f in d.parents or d in f.parents:
        raise ReviewError(f"--data {data} and {frames} overlap; keep the frames to review out of the training folder")


def class_list(data: Path, run_labels: list[str], extra: str | None) -> list[str]:
    """The classes offered, in key order: the run's (its output order), then DATA_DIR's folders, then --labels."""
    out: list[str] = []
    for label in run_labels:
        out.append(check_label(label, "--run label"))
    for label in classes_of(data):
        if label not in out:
            out.append(label)
    for label in (extra or "").split(","):
        label = label.strip()
        if label and label not in out:
            out.append(check_label(label, "--labels"))
    if not out:
        raise ReviewError(f"no classes: {data} has no class folders; pass --run RUN_DIR or --labels A,B,...")
    return out


def open_review(frames_dir: str | os.PathLike, data_dir: str | os.PathLike, *, run: str | os.PathLike | None = None,
                labels: str | None = None, progress=None) -> Store:
    """Scan FRAMES_DIR, group and order its frames, score them (with `run`'s model when given), and return
    the Store that records decisions into DATA_DIR. Raises ReviewError (one line)."""
    frames_dir, data_dir = Path(frames_dir), Path(data_dir)
    _check_folders(frames_dir, data_dir)
    t0 = time.perf_counter()
    frames, skipped = scan(frames_dir)
    if skipped and progress:
        progress(f"left out {len(skipped)} symbolic link(s) or special file(s), e.g. {skipped[0]}")
    if not frames:
        raise ReviewError(f"{frames_dir} holds no frames (.jpg, .png, ...); pull some with `edgelite deploy "
                          "--pull-frames DIR` or save them with `edgelite run --save-uncertain DIR`")
    index = Index(frames_dir, frames, progress=progress)
    run_labels: list[str] = []
    scores: dict = {}
    model = "recorded"
    if run is not None:
        from edgelite.review.scores import score_frames

        run_labels, scores = score_frames(index, run, progress=progress)
        model = Path(run).resolve().name
        index.order = index.rank(scores)
    classes = class_list(data_dir, run_labels, labels)
    for f in frames:  # the recorded guesses carry file-name-safe labels: map them back to the class names
        f.top = match_labels(f.top, classes)
    if progress:
        progress(f"{len(frames)} frames in {len(index.groups)} groups ({len(index.unreadable)} not images) indexed "
                 f"in {time.perf_counter() - t0:.1f} s")
    return Store(index, data_dir, classes, model=model, scores=scores)


def serve(frames_dir, data_dir, *, run=None, labels=None, http: str = "127.0.0.1:8090", token: str | None = None):
    """Serve the review page until Ctrl-C (see `open_review`)."""
    from edgelite.review.server import ReviewServer

    store = open_review(frames_dir, data_dir, run=run, labels=labels, progress=_say)
    server = ReviewServer(store, http, token, title=str(frames_dir)).start()
    stop = threading.Event()
    threading.Thread(target=store.index.warm, args=(WARM, stop), name="thumbs", daemon=True).start()
    print(f"review {len(store.index.frames)} frames at {server.url}  (Ctrl-C to stop)", flush=True)
    done = threading.Event()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a service manager's stop: the summary, exit 0
        signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(1.0):
            pass
    finally:
        stop.set()
        server.close()
        waiting = store.discarded_waiting()
        labelled = sum(len(d.moves) for d in store.history if d.action == "label")
        print(f"labelled {labelled} frames into {data_dir} (provenance in {store.csv})"
              + (f"; {waiting} discarded frames wait in {store.discard_dir} (delete them from the page, or by hand)"
                 if waiting else ""), flush=True)
