"""The one error of the remote layer: SSH could not connect, a device command failed, or a bad flag."""

from __future__ import annotations

from edgelite.errors import EXIT_CONNECT, EXIT_REMOTE, EXIT_USAGE, EdgeliteError

__all__ = ["EXIT_CONNECT", "EXIT_REMOTE", "EXIT_USAGE", "RemoteError"]


class RemoteError(EdgeliteError):
    """Reaching a device failed. `exit_code`: EXIT_CONNECT (ssh could not connect or authenticate),
    EXIT_REMOTE (a command on the device failed) or EXIT_USAGE (a bad --host, --identity, --ssh-option)."""
