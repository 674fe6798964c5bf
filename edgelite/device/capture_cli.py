"""`edgelite capture`: argparse only. The work is in `edgelite.device.capture`, imported when the command runs."""

from __future__ import annotations

import os

from edgelite.device.options import MIN_FREE_MB

CAPTURE_EXAMPLES = """\
examples:
  edgelite capture --source 0 --out data --label cat --every 0.5 --count 100   # 100 frames of camera 0, 2 a second
  edgelite capture --source picamera2 --out data --label empty --count 50
  edgelite capture --source clip.mp4 --out data --label dog --every 1           # one frame a second of the clip
  edgelite train data --out runs/mine                                           # then train on what was captured

Stops at --count, at the end of a file or folder, or on Ctrl-C / SIGTERM (the frames saved are kept).
Under --min-free MB free on the card (or when it refuses a write) it says so once, keeps reading and saves
again when there is room; the summary counts the frames it could not save.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "capture", help="save camera frames into DATA_DIR/LABEL/ to train on (the camera the model will see)",
        description="Save frames from the same camera, stream, video or image folder `edgelite run` reads into "
                    "DATA_DIR/LABEL/ as JPEG files, ready for `edgelite train DATA_DIR`.",
        epilog=CAPTURE_EXAMPLES)
    p.add_argument("--source", default=os.environ.get("EDGELITE_SOURCE") or "0", metavar="SRC",
                   help="camera index (0), /dev/videoN, picamera2[:N] (Pi camera N), rtsp:// or http:// URL, video file or image folder "
                        "(default $EDGELITE_SOURCE, else 0)")
    p.add_argument("--out", required=True, metavar="DATA_DIR", help="the dataset folder; frames go into DATA_DIR/LABEL/")
    p.add_argument("--label", required=True, metavar="NAME", help="the class these frames show (one folder name)")
    p.add_argument("--every", type=float, default=1.0, metavar="S",
                   help="seconds between saved frames (default 1; 0 = every frame)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="stop after N saved frames (default: no limit)")
    p.add_argument("--quality", type=int, default=92, metavar="Q", help="JPEG quality 1..100 (default 92)")
    p.add_argument("--min-free", type=float, default=MIN_FREE_MB, metavar="MB",
                   help="pause saving while the card has less than MB megabytes free, resume when there is room "
                        f"again (default {MIN_FREE_MB:g}, as run --save-uncertain; 0 = until the card is full)")
    p.add_argument("--rtsp-transport", choices=["tcp", "udp"], default=None, help="for rtsp:// sources")
    p.add_argument("--open-timeout", type=float, default=10.0, metavar="S", help="timeout opening a stream (default 10)")
    p.add_argument("--stall-timeout", type=float, default=5.0, metavar="S",
                   help="give up when a live source gives no frame for S seconds (default 5)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.add_argument("-v", "--verbose", action="store_true", help="also show OpenCV's and FFmpeg's own log lines")
    p.set_defaults(func=capture_command)


def capture_command(args) -> int:
    import signal
    import sys
    import threading

    from edgelite.device.cli import quiet_opencv

    quiet_opencv(args.verbose)

    from edgelite.device.capture import CaptureOptions, capture
    from edgelite.options import from_namespace

    stop = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # systemd / `timeout`: finish the frame, keep the rest
    try:
        summary = capture(from_namespace(CaptureOptions, args), stop=stop,
                          say=lambda line: print(f"edgelite capture: {line}", file=sys.stderr, flush=True))
    finally:
        signal.signal(signal.SIGTERM, old)
    if not args.quiet:
        print(summary.line(), flush=True)
    return 0
