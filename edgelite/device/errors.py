"""Errors of `edgelite run` that a user can cause or fix. The CLI prints them as one line."""

from __future__ import annotations

#: exit code when the source stayed lost after --max-reconnects attempts (sysexits EX_TEMPFAIL:
#: "temporary failure, try again"), distinct from 1 (crash) and 2 (user error) so systemd restarts it.
EXIT_SOURCE_LOST = 75


class RunError(Exception):
    """A bad option or source that the user can fix (exit code 2)."""

    exit_code = 2


class SourceError(RunError):
    """The source cannot be used at all: no such file, not a video, picamera2 not installed."""


class SourceFailed(Exception):
    """A live source failed (open or read error, timeout); the loop reconnects with backoff."""


class EndOfSource(Exception):
    """A file or folder source has no more frames."""
