"""`edgelite bench`'s options are declared once: the BenchOptions fields are the CLI's flags, with the same
defaults; the SSH flags become its `connection`; the device's bench gets the same options back as flags."""

from __future__ import annotations

import pytest

from edgelite.bench.cli import options_from_args
from edgelite.bench.errors import BenchUsageError
from edgelite.bench.options import BenchOptions, device_argv, parse_formats
from edgelite.remote.connection import SSH_FLAGS
from tests.optionskit import check_fields_match_flags, subparser


def test_bench_options_fields_are_the_bench_flags():
    check_fields_match_flags("bench", BenchOptions, not_flags={"connection"}, not_fields={"targets", *SSH_FLAGS})


def _opts(*argv: str) -> BenchOptions:
    return options_from_args(subparser("bench").parse_args(["bundle", *argv]))


def test_flags_reach_the_options_and_the_ssh_flags_make_the_connection():
    o = _opts("--formats", "int8,tflite", "--num-threads", "1,4", "--runs", "5", "--json", "-", "--no-isolate")
    assert (o.formats, o.threads, o.runs, o.json, o.isolate, o.connection) == ("int8,tflite", "1,4", 5, "-", False, None)
    assert o.format_list() == ["int8", "fp32"] and o.thread_list() == [1, 4]  # aliases as in convert
    assert _opts() == BenchOptions()
    c = _opts("--host", "pi@pi4:2222", "--dir", "/srv/el", "-i", "key").connection
    assert (str(c.target), c.dir, c.identity) == ("pi@pi4:2222", "/srv/el", "key")
    with pytest.raises(BenchUsageError, match="only apply with --host"):
        _opts("--dir", "/srv/el")


def test_the_device_bench_gets_the_same_options_back():
    o = _opts("--formats", "int8", "--threads", "2", "--runs", "7", "--warmup", "1", "--min-seconds", "0.5",
              "--no-isolate", "--progress")
    again = _opts(*device_argv(o))
    for name in ("formats", "threads", "runs", "warmup", "min_seconds", "isolate", "progress"):
        assert getattr(again, name) == getattr(o, name), name


def test_formats_all_and_errors():
    assert parse_formats("all") is None and parse_formats(["all"]) is None and parse_formats(None) is None
    assert parse_formats(["edge-tpu", "int8", "INT8"]) == ["edgetpu", "int8"]
    with pytest.raises(BenchUsageError, match="--formats is empty"):
        parse_formats(",")


def test_gates_name_what_each_row_misses():
    from edgelite.bench.options import gate_misses

    ok = {"name": "int8", "threads": 2, "status": "ok", "top1": 0.9, "latency_ms": {"p50": 4.0}}
    assert gate_misses([ok], None, None) == [] and gate_misses([ok], 0.9, 4.0) == []
    assert gate_misses([ok], 0.95, None) == ["int8 x2: top-1 0.900 < 0.95"]
    assert gate_misses([ok], None, 3.5) == ["int8 x2: p50 4.00 ms > 3.5"]
    assert gate_misses([dict(ok, top1=None)], 0.5, None) == ["int8 x2: no top-1 (no labelled images; give --data DIR)"]
    assert gate_misses([dict(ok, status="load failed")], None, 100.0) == ["int8 x2: load failed"]
    with pytest.raises(BenchUsageError, match="--max-p50 0 ms is not positive"):
        BenchOptions(max_p50=0).validate()


def test_more_threads_than_cores_is_noted_under_the_table():
    """Issue 25 (smaller): `--threads 4` on 2 cores gave no note beside a row that measures contention."""
    from edgelite.bench import report
    from edgelite.bench.options import threads_over_cores

    assert threads_over_cores([1, 2], 2) is None
    note = threads_over_cores([1, 2, 4, 8], 2)
    assert note.startswith("--threads 4,8 are more than the 2 cores here")
    table = report.format_table({"environment": {"cores": 2}, "rows": [], "warnings": [note]})
    assert note in table
