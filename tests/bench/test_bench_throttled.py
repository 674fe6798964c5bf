"""The Pi's throttling state (`vcgencmd get_throttled`) recorded by bench beside the governor.

A fake `vcgencmd` — a real executable first on PATH, answering as the firmware does — so the real
subprocess path runs; `fake_vcgencmd` is also used by test_bench.py's end-to-end check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgelite.bench.env import (
    decode_throttled,
    parse_throttled,
    read_environment,
    read_throttled,
    throttled_after_run,
    throttled_during,
    throttled_warning,
)

FAKE_VCGENCMD = """#!/bin/sh
# answers `get_throttled` with the next line of values (the last one repeats), as the Pi firmware would
[ "$1" = get_throttled ] || { echo "error=1 error_msg=\\"Command not registered\\"" ; exit 255; }
f="$(dirname "$0")/values"
echo "throttled=$(head -n 1 "$f")"
[ "$(wc -l < "$f")" -gt 1 ] && sed -i 1d "$f"
exit 0
"""


def fake_vcgencmd(monkeypatch, where: Path, *values: str) -> Path:
    """Put a `vcgencmd` first on PATH that answers `throttled=V` for each of `values` in turn."""
    where.mkdir(parents=True, exist_ok=True)
    exe = where / "vcgencmd"
    exe.write_text(FAKE_VCGENCMD)
    exe.chmod(0o755)
    (where / "values").write_text("".join(v + "\n" for v in values))
    monkeypatch.setenv("PATH", f"{where}{os.pathsep}{os.environ.get('PATH', '')}")
    return exe


@pytest.mark.parametrize("value, now, since_boot", [
    (0x0, [], []),
    (0x50005, ["under-voltage", "throttled"], ["under-voltage", "throttled"]),  # the classic weak supply
    (0x50000, [], ["under-voltage", "throttled"]),  # it happened earlier, not now
    (0x80008, ["soft temperature limit"], ["soft temperature limit"]),
    (0xF000F, ["under-voltage", "frequency capped", "throttled", "soft temperature limit"],
     ["under-voltage", "frequency capped", "throttled", "soft temperature limit"]),
    (0x20000, [], ["frequency capped"]),
])
def test_decoding_known_values(value, now, since_boot):
    d = decode_throttled(value)
    assert d == {"value": hex(value), "now": now, "since_boot": since_boot}


def test_parsing_vcgencmd_output():
    assert parse_throttled("throttled=0x50005\n") == 0x50005
    assert parse_throttled("throttled=0x0") == 0 and parse_throttled("throttled=0") == 0
    assert parse_throttled('error=1 error_msg="Command not registered"') is None and parse_throttled("") is None


def test_warning_only_for_what_happened_during_the_run():
    clean, weak, earlier = decode_throttled(0), decode_throttled(0x50005), decode_throttled(0x50000)
    hot_now = decode_throttled(0x80008)
    assert throttled_during(clean, clean) == [] and throttled_warning({"throttled": {"before": clean, "after": clean}}) is None
    # happened before the run (sticky bits already set, nothing now): not this run's doing
    assert throttled_during(earlier, earlier) == []
    # first recorded while it ran, even though it is over by the end
    assert throttled_during(clean, earlier) == ["under-voltage", "throttled"]
    assert throttled_during(clean, weak) == ["under-voltage", "throttled"]
    assert throttled_during(earlier, hot_now) == ["soft temperature limit"]
    w = throttled_warning({"throttled": {"before": clean, "after": weak}})
    assert w and "\n" not in w and "under-voltage, throttled during the run" in w
    assert "0x0 before, 0x50005 after" in w and "power supply" in w and "heatsink" in w
    w = throttled_warning({"throttled": {"before": clean, "after": hot_now}})
    assert "soft temperature limit" in w and "heatsink" in w and "power supply" not in w
    # not recorded (no vcgencmd) or a failed second read: no warning
    assert throttled_warning({"throttled": None}) is None and throttled_warning({}) is None
    assert throttled_warning({"throttled": {"before": clean, "after": None}}) is None


def test_real_vcgencmd_process_before_and_after(tmp_path, monkeypatch):
    fake_vcgencmd(monkeypatch, tmp_path / "bin", "0x0", "0x50005")
    env = read_environment(tmp_path / "root")  # an empty root: no board, no governor, but vcgencmd on PATH
    assert env["throttled"] == {"before": decode_throttled(0)} and env["warnings"] == []
    w = throttled_after_run(env)
    assert env["throttled"]["after"] == decode_throttled(0x50005)
    assert w and env["warnings"] == [w] and "under-voltage" in w


def test_without_vcgencmd_nothing_is_recorded_or_warned(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert read_throttled() is None
    env = read_environment(tmp_path)
    assert env["throttled"] is None and throttled_after_run(env) is None and env["warnings"] == []


def test_a_vcgencmd_that_fails_is_not_recorded(tmp_path, monkeypatch):
    exe = fake_vcgencmd(monkeypatch, tmp_path / "bin", "0x0")
    exe.write_text('#!/bin/sh\necho "VCHI initialization failed" >&2\nexit 255\n')  # no /dev/vchiq access
    assert read_throttled() is None
