"""Who deployed: `user@host` of this machine, recorded in each release. Standard library only."""

from __future__ import annotations


def whoami() -> str:
    """`user@host` of this machine, recorded in each release (`?` where a container has no user name)."""
    import getpass
    import socket

    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name is not worth a failed deploy
        return "?"
