"""The connector interface: the three things edgelite does to a device (as pyinfra's connectors).

Everything that reaches a device goes through a `Connector`; `edgelite.remote.ssh.Remote` is the
implementation (OpenSSH, rsync or scp, one host-key policy). What runs on the device is the agent
(`edgelite.deploy.agent`, called through `edgelite.remote.agent.Agent`): a connector runs the agent's command
line, copies files, fetches files back.
`edgelite fleet` hands the same host-key policy to Ansible's ssh (`edgelite.remote.ssh.policy_options`).

    >>> from edgelite.remote.ssh import Remote
    >>> issubclass(Remote, Connector)
    True
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Connector(Protocol):
    """One device (its `target`: a `Target`), reached by one transport."""

    def run(self, command: str, *, input: str | None = None, timeout: float | None = 600,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run one command line on the device (its stdin `input`); a transport failure is a RemoteError."""
        ...

    def put(self, local: str | os.PathLike, remote_path: str, *, transfer: str = "rsync") -> None:
        """Copy one local file to a device path, replacing it."""
        ...

    def push(self, local: Sequence[str | os.PathLike], remote_dir: str, *, transfer: str = "rsync",
             checksum: bool = False, delete: bool = False, contents: bool = False) -> None:
        """Copy files and folders into a device folder (rsync: only what changed)."""
        ...

    def get(self, remote_dir: str, local_dir: str | os.PathLike, *, transfer: str = "rsync",
            remove_source: bool = False) -> list[str]:
        """Copy the files of a device folder here as plain files; the relative paths copied."""
        ...
