"""Errors a user can cause while converting; each message is one line that says what to do.

`edgelite.cli` prints a ConvertError as ``edgelite convert: error: <message>`` and exits with the
error's ``exit_code`` from the table in `edgelite.errors`.
"""

from __future__ import annotations

from edgelite.errors import EXIT_FAILED, EXIT_REFUSED, EXIT_USAGE, EdgeliteError


class ConvertError(EdgeliteError):
    """The run, the options or the environment do not allow the conversion (exit code 2)."""

    exit_code = EXIT_USAGE


class FormatsFailed(ConvertError):
    """Some requested formats failed to export or validate; the bundle holds the others (exit code 1)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, bundle=None):
        super().__init__(message)
        self.bundle = bundle


class GateFailed(ConvertError):
    """`--max-drop`: a format lost more top-1 accuracy than allowed (exit code 3).

    The bundle is still written (the failing entries are marked ``validation failed`` so the device
    never picks them); ``.bundle`` holds it and ``.failures`` the offending format names.
    """

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, bundle=None, failures: list[str] | None = None):
        super().__init__(message)
        self.bundle = bundle
        self.failures = failures or []
