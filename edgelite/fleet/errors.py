"""Errors of `edgelite fleet`: one class, exit codes from the one table in `edgelite.errors`."""

from __future__ import annotations

from edgelite.errors import EXIT_FLEET, EXIT_USAGE, EdgeliteError

__all__ = ["EXIT_FLEET", "EXIT_USAGE", "FleetError"]


class FleetError(EdgeliteError):
    """A fleet command that stopped for a reason the user can act on (default exit 2); a rollout in which
    some hosts did not get the release exits EXIT_FLEET (9) after its summary."""
