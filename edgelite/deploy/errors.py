"""Errors of `edgelite deploy` that a user can cause or fix; the CLI prints them as one line.

Each kind of refusal has its own exit code (the one table is `edgelite.errors`; the names below stay
importable from here), so scripts (and `make deploy`) can tell them apart.
"""

from __future__ import annotations

from edgelite.errors import (
    EXIT_CHECKSUM,
    EXIT_CONNECT,
    EXIT_REFUSED,
    EXIT_REMOTE,
    EXIT_SMOKE,
    EXIT_UNHEALTHY,
    EXIT_UNTRUSTED,
    EXIT_USAGE,
    EdgeliteError,
)

EXIT_PREFLIGHT = EXIT_REFUSED  # the device cannot run edgelite (32-bit OS, Python too old, no disk, ...)

__all__ = ["EXIT_CHECKSUM", "EXIT_CONNECT", "EXIT_PREFLIGHT", "EXIT_REMOTE", "EXIT_SMOKE", "EXIT_UNHEALTHY",
           "EXIT_UNTRUSTED", "EXIT_USAGE", "DeployError"]


class DeployError(EdgeliteError):
    """A deploy that stopped for a reason the user can act on; `exit_code` says which kind (default 2)."""
