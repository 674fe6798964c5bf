"""`RunOptions`: every option of `edgelite run`, declared once (standard library only).

The CLI's flags are these field names with '_' -> '-' (`edgelite.options.from_namespace` fills it from
the argparse namespace), and the Python API `edgelite.device.run(model, source, **options)` takes the
same names. `truth`, `max_backoff` and `uncertain_gap` are Python-only.

    >>> RunOptions(source="clip.mp4", threads=2).validate()
    >>> RunOptions(top_k=0).validate()
    Traceback (most recent call last):
    ...
    edgelite.device.errors.RunError: --top-k must be at least 1
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from edgelite.device.errors import RunError

#: MB to leave free on the card (`run --min-free`, `capture --min-free`): room for logs and the next release
MIN_FREE_MB = 200.0

#: Coral's device spec (pycoral's `model@usb:0`): "" the first Edge TPU, ":N" the Nth of any kind, "usb" / "pci"
#: the first of that kind, "usb:N" / "pci:N" the Nth of that kind (counted from 0)
EDGETPU_DEVICE = re.compile(r"(usb|pci)?(:[0-9]+)?")


def check_edgetpu_device(spec: str) -> str:
    """The Edge TPU device spec if it is one libedgetpu understands, else a one-line RunError.

    >>> check_edgetpu_device("usb:1"), check_edgetpu_device("")
    ('usb:1', '')
    """
    if not isinstance(spec, str) or not EDGETPU_DEVICE.fullmatch(spec):
        raise RunError(f"--edgetpu {spec!r} is not an Edge TPU device: give usb, pci, usb:N, pci:N or :N "
                       "(N counts from 0), or --edgetpu alone for the first one; the BUNDLE goes before --edgetpu")
    return spec


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Every option of `edgelite run`; field names are the CLI flags with '-' -> '_'."""

    source: str = "0"
    format: str | None = "auto"  # bundle entry (int8, fp16, fp32, edgetpu, onnx, ...); "auto" (or None) = measured here
    labels: str | None = None  # with a bare model file
    top_k: int = 3
    threshold: float | Sequence[str | float] | None = None  # None = 0; P, or repeated: "P" / "LABEL=P" (see class_thresholds)
    min_duration: float = 0.0  # s a new label must hold before it is reported (an event)
    threads: int | None = None  # CPU threads for the interpreter (--threads, alias --num-threads)
    edgetpu: str | bool | None = None  # None = CPU; "" (or True) = the first Edge TPU; usb|pci[:N] or :N = that one
    smooth: int = 1
    crop: float | None = None  # None = the bundle's
    json: str | None = None  # "-" for stdout, or a file
    print_every: int | None = None  # console line every N results; 0 = none; None = 1, or 0 with json="-"
    quiet: bool = False  # no console lines (and, in the CLI, no progress messages)
    display: bool = False
    http: str | None = None  # PORT or HOST:PORT
    token: str | None = None
    token_file: str | None = None  # the token from a file (else --token, else $EDGELITE_TOKEN): not in `ps`
    max_viewers: int = 4
    rtsp_transport: str | None = None  # tcp | udp (None = OpenCV's default, tcp)
    mqtt: str | None = None  # mqtt[s]://[user@]host[:port]/topic/prefix (edgelite.device.outputs.mqtt)
    mqtt_every: int = 0  # also publish every Nth result; 0 = label changes only
    mqtt_ca: str | None = None
    mqtt_discovery: str = "homeassistant"  # Home Assistant discovery prefix; "" = no discovery
    save_uncertain: str | None = None  # keep low-confidence frames here (edgelite.device.outputs.uncertain)
    below: float = 0.6  # with save_uncertain: a frame is uncertain when its top-1 score is below this
    max_per_hour: int = 60  # with save_uncertain: frames kept in any rolling hour
    max_mb: float = 200.0  # with save_uncertain: the folder's size cap (frames already there count)
    min_free: float = MIN_FREE_MB  # with save_uncertain: MB left free on the card; saving pauses below it
    uncertain_gap: float = 1.0  # Python-only: seconds between kept frames (a burst is near-copies)
    max_frames: int | None = None
    loop: bool = False
    realtime: bool = False
    stall_timeout: float = 5.0
    open_timeout: float = 10.0
    max_reconnects: int = 5
    retry: bool = False  # a source that never opened: retry as for a lost one (always so under systemd)
    backoff: float = 0.5  # first reconnect delay, doubled per consecutive failure
    max_backoff: float = 30.0  # Python-only
    truth: Sequence[int] | None = None  # Python-only: label index per source frame, to count correct results

    def _parse_thresholds(self) -> tuple[float, dict[str, float]]:
        """(default threshold, {label: threshold}) from --threshold P and --threshold LABEL=P (repeatable)."""
        values = self.threshold if isinstance(self.threshold, (list, tuple)) else [self.threshold or 0.0]
        default, per_class = 0.0, {}
        for v in values:
            label, _, p = str(v).rpartition("=") if isinstance(v, str) else ("", "", v)
            try:
                p = float(p)
            except ValueError:
                raise RunError(f"--threshold {v!r}: give a score P or LABEL=P, e.g. --threshold 0.5 "
                               "--threshold cat=0.8") from None
            if not 0.0 <= p <= 1.0:
                raise RunError(f"--threshold {v!r}: a threshold must be within 0..1")
            if label:
                per_class[label] = p
            else:
                default = p
        return default, per_class

    def class_thresholds(self, labels: Sequence[str]) -> float | list[float]:
        """One threshold for every class, or one per class in `labels` order when a LABEL=P was given.

        >>> RunOptions(threshold=["0.5", "cat=0.8"]).class_thresholds(["cat", "dog"])
        [0.8, 0.5]
        """
        default, per_class = self._parse_thresholds()
        unknown = sorted(set(per_class) - set(labels))
        if unknown:
            raise RunError(f"--threshold {unknown[0]}=...: no class {unknown[0]!r} in this model; its classes are "
                           f"{', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}")
        return [per_class.get(name, default) for name in labels] if per_class else default

    @property
    def edgetpu_device(self) -> str | None:
        """None = no Edge TPU asked for, else its checked device spec ("" = the first one).

        >>> RunOptions(edgetpu=True).edgetpu_device, RunOptions(edgetpu="pci:0").edgetpu_device
        ('', 'pci:0')
        """
        if self.edgetpu is None or self.edgetpu is False:
            return None
        return "" if self.edgetpu is True else check_edgetpu_device(self.edgetpu)

    @property
    def console_every(self) -> int:
        """Console line every N results; 0 = none (--quiet silences them). Unasked, none with --json - (the
        JSON lines are the output; a console line per frame on stderr would only bury the messages)."""
        if self.quiet:
            return 0
        if self.print_every is None:
            return 0 if self.json == "-" else 1
        return self.print_every

    def validate(self) -> None:
        if self.top_k < 1:
            raise RunError("--top-k must be at least 1")
        self._parse_thresholds()
        if self.edgetpu not in (None, True, False):
            check_edgetpu_device(self.edgetpu)
        if self.min_duration < 0:
            raise RunError("--min-duration must be >= 0 seconds")
        if self.smooth < 1:
            raise RunError("--smooth must be at least 1 (1 = no smoothing)")
        if self.threads is not None and self.threads < 1:
            raise RunError("--threads must be at least 1")
        if self.crop is not None and not 0.0 < self.crop <= 1.0:
            raise RunError("--crop must be within (0, 1]")
        if self.max_frames is not None and self.max_frames < 1:
            raise RunError("--max-frames must be at least 1")
        if self.print_every is not None and self.print_every < 0:
            raise RunError("--print-every must be >= 0")
        if self.stall_timeout <= 0 or self.open_timeout <= 0:
            raise RunError("--stall-timeout and --open-timeout must be positive")
        if self.max_reconnects < 0:
            raise RunError("--max-reconnects must be >= 0")
        if self.backoff < 0 or self.max_backoff < 0:
            raise RunError("--backoff must be >= 0")
        if not 0.0 < self.below <= 1.0:
            raise RunError("--below must be within (0, 1]: frames whose top-1 score is below it are kept")
        if self.max_per_hour < 1 or self.max_mb <= 0 or self.uncertain_gap < 0 or self.min_free < 0:
            raise RunError("--max-per-hour must be at least 1, --max-mb positive and --min-free at least 0 (the "
                           "caps that keep the card from filling)")
