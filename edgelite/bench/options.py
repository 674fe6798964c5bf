"""`BenchOptions`: every option of `edgelite bench`, declared once, and the parsers of its lists.

The CLI's flags are these field names with '_' -> '-' (`edgelite.options.from_namespace`), the Python
API `bench(paths, **options)` / `bench_remote(host, paths, **options)` takes the same names, and
`device_argv` turns them back into flags for the bench that runs on a device. The SSH flags make the
`connection` (`edgelite.remote.connection.Connection`; None = bench here).

    >>> BenchOptions(threads="1,4", runs=50).thread_list()
    [1, 4]
    >>> device_argv(BenchOptions(formats="int8", runs=5))
    ['--formats', 'int8', '--runs', '5', '--warmup', '20', '--min-seconds', '0.0', '--no-progress']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgelite.bench.errors import BenchUsageError
from edgelite.formats import parse_formats as parse_format_names

if TYPE_CHECKING:
    from edgelite.remote.connection import Connection

DEFAULT_RUNS = 200
DEFAULT_WARMUP = 20


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """Every option of `edgelite bench`; field names are the CLI flags with '-' -> '_'."""

    formats: str | Sequence[str] | None = "all"  # names or aliases (edgelite.formats); "all" = every model
    threads: str | Sequence[int] | None = None  # "1,2,4"; None = 1,2,4 up to the cores
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    min_seconds: float = 0.0
    data: str | None = None  # class-folder tree or .npz; None = the bundle's held-out split
    pipeline: str | None = None  # a source to time the whole camera loop on
    isolate: bool = True  # one process per row
    progress: bool | None = None  # None = when stderr is a terminal
    json: str | None = None  # write the result JSON to FILE or - (a directory: <env>.json in it)
    csv: str | None = None
    plot: str | None = None
    out: str | None = None  # <env>.json, .csv and .png into this folder
    overwrite: bool = False  # replace an earlier <env>.* in `out` (else <env>-2.*)
    min_top1: float | None = None  # every row must reach this top-1 (0..1), else exit code 3
    max_p50: float | None = None  # every row's p50 latency must be at most this many ms, else exit code 3
    connection: Connection | None = None  # --host and the SSH flags: bench on that device
    pick: bool = False  # the trial of `run --format auto` on one bundle instead (edgelite.bench.pick)

    def validate(self) -> None:
        if self.runs < 1:
            raise BenchUsageError("--runs must be at least 1")
        if self.warmup < 0 or self.min_seconds < 0:
            raise BenchUsageError("--warmup and --min-seconds cannot be negative")
        if self.min_top1 is not None and not 0.0 <= self.min_top1 <= 1.0:
            raise BenchUsageError(f"--min-top1 {self.min_top1:g} is not a fraction; give 0..1, e.g. --min-top1 0.85")
        if self.max_p50 is not None and not self.max_p50 > 0:
            raise BenchUsageError(f"--max-p50 {self.max_p50:g} ms is not positive; e.g. --max-p50 25")
        clash = [f for f, v in (("--data", self.data), ("--pipeline", self.pipeline), ("--min-top1", self.min_top1),
                                ("--csv", self.csv), ("--plot", self.plot), ("--out", self.out)) if v is not None]
        if self.pick and clash:
            raise BenchUsageError(f"--pick times the candidates of `run --format auto` only; drop {', '.join(clash)}")

    def format_list(self) -> list[str] | None:
        return parse_formats(self.formats)

    def thread_list(self) -> list[int]:
        return parse_threads(self.threads)


def default_threads(cores: int | None = None) -> list[int]:
    """1, 2, 4 up to the cores this process may use (a 4-core Pi: 1,2,4; a 2-core VM: 1,2)."""
    from edgelite.device.machine import default_threads as device_default

    return device_default(cores)


def parse_threads(text: str | Sequence[int] | None) -> list[int]:
    """'1,2,4' -> [1, 2, 4] (order kept, duplicates dropped)."""
    if text is None or text == "" or text == "auto":
        return default_threads()
    if isinstance(text, list | tuple):
        items = [str(t) for t in text]
    else:
        items = [t.strip() for t in str(text).split(",") if t.strip()]
    out: list[int] = []
    for t in items:
        if not t.isdigit() or int(t) < 1:
            raise BenchUsageError(f"--threads takes positive integers like 1,2,4; got {t!r}")
        if int(t) not in out:
            out.append(int(t))
    return out


def threads_over_cores(threads: Sequence[int], cores: int | None) -> str | None:
    """The note for thread counts above the cores this process may use: those threads share cores, so the
    row shows contention, not a speed-up (None when every count fits).

    >>> threads_over_cores([1, 2, 4], 2)
    '--threads 4 is more than the 2 cores here: its threads share cores, so that row measures contention, not a speed-up'
    """
    over = [t for t in threads if cores and t > cores]
    if not over:
        return None
    return (f"--threads {','.join(map(str, over))} {'is' if len(over) == 1 else 'are'} more than the {cores} cores "
            "here: its threads share cores, so that row measures contention, not a speed-up")


def parse_formats(text: str | Sequence[str] | None) -> list[str] | None:
    """'all' / None -> None (every model in the bundle); 'fp32,int8' -> ['fp32', 'int8'] (aliases allowed,
    order kept)."""
    if text is None or text == "all" or (not isinstance(text, str) and list(text) == ["all"]):
        return None
    return parse_format_names(text, error=BenchUsageError)


def device_argv(opts: BenchOptions) -> list[str]:
    """The measurement options as `edgelite bench` flags (an argv list, no shell), for the bench a device runs."""
    argv: list[str] = []
    for flag, value in (("--formats", opts.formats), ("--threads", opts.threads)):
        if value:
            text = value if isinstance(value, str) else ",".join(map(str, value))
            argv += [flag, text]
    argv += ["--runs", str(int(opts.runs)), "--warmup", str(int(opts.warmup)),
             "--min-seconds", repr(float(opts.min_seconds))]
    argv += ["--pick"] if opts.pick else []
    return argv + (["--no-isolate"] if not opts.isolate else []) + ["--progress" if opts.progress else "--no-progress"]


def gate_misses(rows: Sequence[dict], min_top1: float | None, max_p50: float | None) -> list[str]:
    """What each row misses of --min-top1 / --max-p50, one short text per row (empty: every row passes).

    A row that did not load or validate, or has no top-1 (no labelled images), misses a gate it cannot show.

    >>> gate_misses([{"name": "int8", "threads": 1, "status": "ok", "top1": 0.8, "latency_ms": {"p50": 3.0}}],
    ...             0.85, 2.5)
    ['int8 x1: top-1 0.800 < 0.85, p50 3.00 ms > 2.5']
    """
    if min_top1 is None and max_p50 is None:
        return []
    out: list[str] = []
    for r in rows:
        why: list[str] = []
        if r.get("status") != "ok":
            why.append(str(r.get("status")))
        else:
            top1, p50 = r.get("top1"), (r.get("latency_ms") or {}).get("p50")
            if min_top1 is not None:
                if top1 is None:
                    why.append("no top-1 (no labelled images; give --data DIR)")
                elif top1 < min_top1:
                    why.append(f"top-1 {top1:.3f} < {min_top1:g}")
            if max_p50 is not None and (p50 is None or p50 > max_p50):
                why.append(f"p50 {p50:.2f} ms > {max_p50:g}" if p50 is not None else "no latency")
        if why:
            out.append(f"{r.get('name')} x{r.get('threads')}: " + ", ".join(why))
    return out
