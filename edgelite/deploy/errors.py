"""Errors of `edgelite deploy` that a user can cause or fix; the CLI prints them as one line.

Each kind of refusal has its own exit code, so scripts (and `make deploy`) can tell them apart.
"""

from __future__ import annotations

from edgelite.errors import EdgeliteError

EXIT_USAGE = 2  # bad option, missing bundle
EXIT_PREFLIGHT = 3  # the device cannot run edgelite (32-bit OS, Python too old, no disk, ...)
EXIT_CHECKSUM = 4  # a bundle file does not match its manifest (on the workstation or the device)
EXIT_SMOKE = 5  # the new bundle failed its one inference on the device; nothing was switched
EXIT_UNHEALTHY = 6  # the new release did not become healthy; the previous one was put back
EXIT_CONNECT = 7  # SSH could not connect or authenticate
EXIT_REMOTE = 8  # a step on the device failed (pip install, ...)


class DeployError(EdgeliteError):
    """A deploy that stopped for a reason the user can act on; `exit_code` says which kind."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code
