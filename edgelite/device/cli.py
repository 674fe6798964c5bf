"""`edgelite run`: argparse only (`edgelite bench` is wired in `edgelite/bench/cli.py`).

Imports nothing heavy: the loop (numpy, OpenCV, LiteRT) is imported when the command runs.
"""

from __future__ import annotations

import logging
import os
import sys

from edgelite.device.options import MIN_FREE_MB

RUN_EXAMPLES = """\
examples:
  edgelite run bundles/demo --source clip.mp4                 # fastest model here (measured), console lines
  edgelite run bundles/demo --source 0 --http 8080            # camera 0, preview on http://127.0.0.1:8080/
  edgelite run bundles/demo --source picamera2 --format int8 --http 0.0.0.0:8080 --token s3cret
  edgelite run bundles/demo --source heldout --print-every 0  # video of the bundle's held-out images: accuracy
  edgelite run model.tflite --labels labels.txt --source frames/ --json - --max-frames 100
  edgelite run bundles/demo --source 0 --save-uncertain unsure/ --below 0.6 --max-per-hour 30
  edgelite run bundles/demo --source 0 --edgetpu usb:1         # the second USB Edge TPU of several
  edgelite run bundles/demo --source 0 --threshold 0.5 --threshold cat=0.8 --min-duration 2
  EDGELITE_MQTT_PASSWORD=... edgelite run bundles/demo --source 0 --mqtt mqtt://cam@broker.local/edgelite/kitchen

exit codes: 0 done (end of source, --max-frames, SIGTERM/SIGINT); 2 user error;
            75 the live source did not open (from a terminal: at once, with the cause; --retry or
               systemd: after --max-reconnects attempts) or stayed lost (systemd restarts it)
"""


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="classify camera frames on the device (LiteRT / Edge TPU / ONNX Runtime)",
        description="Classify frames from a camera, stream, video file or image folder with a bundle's model; "
                    "print top-k labels with per-stage timings, optionally as JSON lines and on a preview page.",
        epilog=RUN_EXAMPLES)
    p.add_argument("model", metavar="BUNDLE", help="bundle directory (edgelite.json) or a bare .tflite/.onnx file")
    m = p.add_argument_group("model")
    m.add_argument("--format", default="auto", metavar="NAME",
                   help="bundle model to run: auto (default: the Edge TPU model when its delegate loads, else the "
                        "fastest validated model and thread count here, by a short measured trial cached per device "
                        "and bundle), or a name to force one: int8, fp16, fp32, dynamic, edgetpu, onnx, qat_int8, ...")
    m.add_argument("--labels", metavar="FILE", help="labels, one per line (bare model file only; default labels.txt beside it)")
    m.add_argument("--edgetpu", nargs="?", const="", default=None, metavar="DEVICE",
                   help="run on a Coral Edge TPU (loads libedgetpu.so.1); fails clearly when it is missing. DEVICE "
                        "picks one of several: usb:0, pci:0, usb, pci or :N (default: the first found)")
    m.add_argument("--threads", "--num-threads", dest="threads", type=int, default=None, metavar="N",
                   help="CPU threads for the interpreter (--num-threads is the old name)")
    m.add_argument("--top-k", type=int, default=3, metavar="K", help="classes to report per frame (default 3)")
    m.add_argument("--threshold", action="append", default=None, metavar="[LABEL=]P",
                   help="hide classes scoring below P (0..1); repeat with LABEL=P for one class "
                        "(--threshold 0.5 --threshold cat=0.8)")
    m.add_argument("--min-duration", type=float, default=0.0, metavar="S",
                   help="a new label counts (console, JSON, preview, MQTT) only once it has held S seconds (default 0)")
    m.add_argument("--smooth", type=int, default=1, metavar="N", help="average scores over the last N frames")
    m.add_argument("--crop", type=float, default=None, metavar="F",
                   help="centre-crop fraction of the shorter side before resizing (default: the bundle's)")
    s = p.add_argument_group("source")
    s.add_argument("--source", default=os.environ.get("EDGELITE_SOURCE") or "0", metavar="SRC",
                   help="camera index (0), /dev/videoN, video file, image folder, rtsp:// or http:// URL, picamera2[:N], imx500 "
                        "(the AI Camera: the bundle's imx500 network runs on its sensor) or heldout (a video of the bundle's held-out images; reports accuracy). Default $EDGELITE_SOURCE "
                        "(keeps a camera password out of `ps`), else 0")
    s.add_argument("--rtsp-transport", choices=["tcp", "udp"], default=None,
                   help="RTSP over TCP (OpenCV's default; through NAT and Wi-Fi) or UDP (lower latency on a clean LAN)")
    s.add_argument("--loop", action="store_true", help="restart a file or folder at its end")
    s.add_argument("--realtime", action="store_true",
                   help="play a file or folder at its frame rate, dropping frames like a live camera")
    s.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N results")
    s.add_argument("--stall-timeout", type=float, default=5.0, metavar="S",
                   help="reopen a live source that gave no frame for S seconds (default 5)")
    s.add_argument("--open-timeout", type=float, default=10.0, metavar="S", help="timeout opening a stream (default 10)")
    s.add_argument("--max-reconnects", type=int, default=5, metavar="N",
                   help="give up (exit 75) after N failed reopen attempts in a row (default 5)")
    s.add_argument("--retry", action="store_true",
                   help="a source that does not open at the start is retried like a lost one (--max-reconnects) "
                        "instead of failing at once with its cause (always so under systemd)")
    s.add_argument("--backoff", type=float, default=0.5, metavar="S",
                   help="first reconnect delay, doubled per failed attempt up to 30 s (default 0.5)")
    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="-|FILE", help="write one JSON object per result (- = stdout)")
    o.add_argument("--print-every", type=int, default=None, metavar="N",
                   help="console line every N results (default 1, none with --json -); 0 = none; "
                        "a * at the end marks a new label")
    o.add_argument("-q", "--quiet", action="store_true", help="no console lines and no progress messages")
    o.add_argument("-v", "--verbose", action="store_true",
                   help="also show OpenCV's and FFmpeg's own log lines (camera and stream details)")
    o.add_argument("--display", action="store_true", help="show an OpenCV window (needs full opencv-python)")
    o.add_argument("--http", metavar="[HOST:]PORT",
                   help="serve the preview page (/, /stream.mjpg, /healthz, /metrics); binds 127.0.0.1 unless a HOST is given")
    o.add_argument("--token", default=None, metavar="T",
                   help="require ?token=T on the preview (required off loopback; default $EDGELITE_TOKEN). "
                        "On a shared machine prefer --token-file or $EDGELITE_TOKEN: `ps` shows --token to every user")
    o.add_argument("--token-file", metavar="FILE", help="read the preview token from FILE's first line")
    o.add_argument("--max-viewers", type=int, default=4, metavar="N", help="concurrent stream viewers (default 4)")
    o.add_argument("--mqtt", metavar="URL", help="publish results to MQTT: mqtt[s]://[user@]host[:port]/topic/prefix "
                   "(password from $EDGELITE_MQTT_PASSWORD; Home Assistant discovery; needs edgelite[mqtt])")
    o.add_argument("--mqtt-every", type=int, default=0, metavar="N",
                   help="with --mqtt: also publish every Nth result (default 0 = label changes only)")
    o.add_argument("--mqtt-ca", metavar="FILE", help="with mqtts://: CA certificate of the broker (default: system CAs)")
    o.add_argument("--mqtt-discovery", default="homeassistant", metavar="PREFIX",
                   help="Home Assistant discovery prefix (default homeassistant; '' = no discovery)")
    u = p.add_argument_group("keep frames to retrain on")
    u.add_argument("--save-uncertain", metavar="DIR",
                   help="save frames whose top-1 score is below --below into DIR as JPEG, named with the time and the "
                        "top guesses (label them, then `edgelite train` / `edgelite adapt`)")
    u.add_argument("--below", type=float, default=0.6, metavar="P", help="with --save-uncertain: the score cap (default 0.6)")
    u.add_argument("--max-per-hour", type=int, default=60, metavar="N",
                   help="with --save-uncertain: at most N frames in any hour (default 60)")
    u.add_argument("--max-mb", type=float, default=200.0, metavar="MB",
                   help="with --save-uncertain: stop saving when DIR holds MB megabytes (default 200)")
    u.add_argument("--min-free", type=float, default=MIN_FREE_MB, metavar="MB",
                   help="with --save-uncertain: pause saving while the card has less than MB megabytes free, "
                        f"resume when there is room again (default {MIN_FREE_MB:g})")
    p.set_defaults(func=run_command)


def options_from_args(args):
    """argparse namespace -> RunOptions, by field name (flag --top-k == RunOptions.top_k)."""
    from edgelite.device.options import RunOptions
    from edgelite.options import from_namespace

    return from_namespace(RunOptions, args)


def quiet_opencv(verbose: bool) -> None:
    """Keep OpenCV's `[ WARN ]` and FFmpeg's `[tcp @ 0x..]` lines off the screen unless -v: the loop says the
    cause itself in one line. Set before cv2 is imported (it reads the variables then); later, through its API."""
    if verbose:
        return
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _heldout_note(args, model: str) -> str:
    """`--source heldout` plays the held-out images as an MJPG video: say so, and what convert measured on the
    images themselves, so the two figures are not read as one (benchmarks/results/heldout_video.md)."""
    if args.source != "heldout":
        return ""
    from edgelite.bundle import Bundle
    from edgelite.errors import EdgeliteError

    try:
        top1 = (Bundle.load(args.model).entry(model).metrics or {}).get("top1")
    except (EdgeliteError, KeyError, OSError):
        top1 = None
    note = " on the held-out images as JPEG video frames"
    if isinstance(top1, (int, float)):
        note += f"; on the images themselves convert measured {top1:.1%} (the compression costs the difference)"
    return note


def run_command(args) -> int:
    quiet_opencv(args.verbose)
    from edgelite.device.loop import run_options

    logger = logging.getLogger("edgelite.device")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edgelite run: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False
    try:
        opts = options_from_args(args)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if opts.threads and opts.threads > cores:
            logger.warning("note: --threads %d is more than the %d cores here: the threads share cores and "
                           "inference is no faster (often slower)", opts.threads, cores)
        summary = run_options(args.model, opts)
        out = sys.stderr if opts.json == "-" else sys.stdout
        if summary.checked is not None:
            acc = summary.accuracy or 0.0
            line = f"{summary.correct}/{summary.checked} frames classified correctly ({acc:.1%}) with {summary.model}"
            line += _heldout_note(args, summary.model)
            print(line, file=out, flush=True)
        if not args.quiet:
            logger.info(summary.line())
        return summary.exit_code
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
