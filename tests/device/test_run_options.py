"""`edgelite run`'s options are declared once: the RunOptions fields are the CLI's flags, with the same defaults."""

from __future__ import annotations

import pytest

from edgelite.device.cli import options_from_args
from edgelite.device.errors import RunError
from edgelite.device.options import RunOptions
from edgelite.options import from_namespace
from tests.optionskit import check_fields_match_flags, subparser


def test_run_options_fields_are_the_run_flags():
    check_fields_match_flags("run", RunOptions, not_flags={"truth", "max_backoff", "uncertain_gap"}, not_fields={"model", "verbose"})  # -v: OpenCV's own log lines, set before the loop


def _opts(*argv: str) -> RunOptions:
    return options_from_args(subparser("run").parse_args(["bundle", *argv]))


def test_flags_reach_the_options_by_name():
    o = _opts("--source", "clip.mp4", "--top-k", "5", "--threads", "2", "--json", "-", "--http", "8080", "-q",
              "--mqtt-every", "3", "--rtsp-transport", "udp")
    assert (o.source, o.top_k, o.threads, o.json, o.http, o.quiet, o.mqtt_every, o.rtsp_transport) == (
        "clip.mp4", 5, 2, "-", "8080", True, 3, "udp")
    assert o.console_every == 0  # --quiet: no console lines whatever --print-every says
    assert _opts().console_every == 1 and _opts() == RunOptions()  # no flags: the dataclass's defaults


def test_threads_keeps_num_threads_as_an_alias():
    assert _opts("--num-threads", "3").threads == 3 == _opts("--threads", "3").threads


def test_options_are_frozen_and_checked():
    o = RunOptions()
    with pytest.raises(AttributeError):
        o.top_k = 9  # type: ignore[misc]
    with pytest.raises(RunError, match="--threads must be at least 1"):
        RunOptions(threads=0).validate()
    with pytest.raises(TypeError):  # a misspelt option is an error, not silently ignored
        from_namespace(RunOptions, subparser("run").parse_args(["b"]), top_kk=1)


def test_run_help_names_the_format_run_picks():
    """Issue 25, item 5: `run --help` said the default was "... else int8", but run picked qat_int8 first. Now the
    default is `auto` (issue 24): the help says it measures, and the parsed default is what the help says."""
    text = " ".join(subparser("run").format_help().split())
    assert subparser("run").parse_args(["b"]).format == "auto"
    assert ("auto (default: the Edge TPU model when its delegate loads, else the fastest validated model and "
            "thread count here, by a short measured trial") in text
