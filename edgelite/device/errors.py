"""Errors of `edgelite run` that a user can cause or fix, and the camera loop's two internal signals.

Every class here derives from `edgelite.errors.EdgeliteError`; the CLI prints the user errors as
one line with their exit code. Standard library only (the device imports no TensorFlow).
"""

from __future__ import annotations

from edgelite.errors import EXIT_SOURCE_LOST, EdgeliteError, UsageError

__all__ = ["EXIT_SOURCE_LOST", "RunError", "SourceError", "ModelLoadError", "SourceSignal", "SourceFailed", "SourceUnavailable",
           "EndOfSource"]


class RunError(UsageError):
    """A bad option or source that the user can fix (exit code 2)."""


class SourceError(RunError):
    """The source cannot be used at all: no such file, not a video, picamera2 not installed."""


class ModelLoadError(UsageError):
    """A model cannot be loaded or run: missing runtime, corrupt file, missing delegate (exit code 2)."""


class SourceSignal(EdgeliteError):
    """Control flow inside the camera loop, not an error for the user: a source raises it and the loop
    catches it (reconnect, stop). It derives from EdgeliteError only so that every exception class in
    edgelite has one root; should one ever escape the loop, the CLI still prints it as one line."""


class SourceFailed(SourceSignal):
    """A live source failed (open or read error, timeout); the loop reconnects with backoff, and exits
    with EXIT_SOURCE_LOST (75) after --max-reconnects failed attempts in a row."""

    exit_code = EXIT_SOURCE_LOST

    def __init__(self, message: str, *, at_open: bool = False):
        super().__init__(message)
        #: the source never opened (no device, refused connection), as against a read that failed
        self.at_open = at_open


class SourceUnavailable(RunError):
    """The live source did not open at the first start from a terminal: said at once, with its cause,
    instead of retrying (a service, under systemd, or `--retry` keeps retrying)."""

    exit_code = EXIT_SOURCE_LOST


class EndOfSource(SourceSignal):
    """A file or folder source has no more frames; the loop ends normally (exit code 0)."""
