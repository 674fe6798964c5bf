"""What to reach and how: `Connection`, and the one argparse group of SSH flags every device command uses.

    >>> p = argparse.ArgumentParser()
    >>> _ = add_connection_arguments(p)
    >>> conn = Connection.from_args(p.parse_args(["--host", "pi@raspberrypi.local:2222", "--ssh-option", "Compression=yes"]))
    >>> str(conn.target), conn.dir, conn.ssh_options
    ('pi@raspberrypi.local:2222', '~/edgelite', ('Compression=yes',))
"""

from __future__ import annotations

import argparse
import dataclasses

from edgelite.remote.layout import DEFAULT_DIR
from edgelite.remote.ssh import Remote
from edgelite.remote.target import Target, parse_target

# the group's flags (argparse `dest`s)
SSH_FLAGS = ("host", "identity", "known_hosts", "strict_host_key", "ssh_option", "dir")


@dataclasses.dataclass(frozen=True)
class Connection:
    """One device and how to reach it; `dir` is the install folder there (not expanded here)."""

    target: Target
    identity: str | None = None
    strict_host_key: bool = False
    known_hosts: str | None = None
    dir: str = DEFAULT_DIR
    verbose: bool = False
    ssh_options: tuple[str, ...] = ()

    def remote(self) -> Remote:
        """A Remote session on this device (use it as a context manager)."""
        return Remote(self.target, identity=self.identity, strict_host_key=self.strict_host_key,
                      known_hosts=self.known_hosts, ssh_options=self.ssh_options, verbose=self.verbose)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Connection:
        """From a namespace of `add_connection_arguments` (a bad --host is a RemoteError, exit code 2)."""
        return cls(parse_target(args.host), identity=args.identity, strict_host_key=args.strict_host_key,
                   known_hosts=args.known_hosts, dir=args.dir or DEFAULT_DIR, verbose=getattr(args, "verbose", False),
                   ssh_options=tuple(args.ssh_option or ()))


def add_connection_arguments(parser: argparse.ArgumentParser, *, host_required: bool = True,
                             title: str = "connection (SSH)") -> argparse._ArgumentGroup:
    """The SSH flags, identical in every command that reaches a device. `host_required=False` where the
    command also works without a device (`bench`); then the other flags need --host (`used_without_host`)."""
    g = parser.add_argument_group(title)
    g.add_argument("--host", required=host_required, metavar="USER@HOST[:PORT]",
                   help="the device, as for ssh: user@host, user@host:port, ssh://user@host:port, user@[::1]:port")
    g.add_argument("-i", "--identity", metavar="KEY", help="SSH private key (default: ssh's own choice)")
    g.add_argument("--known-hosts", metavar="FILE", help="known_hosts file to use (default: ssh's)")
    g.add_argument("--strict-host-key", action="store_true",
                   help="require the device's host key to be in known_hosts already (default: accept a new "
                        "device's key on first contact, refuse a changed one)")
    g.add_argument("--ssh-option", action="append", default=[], metavar="OPT",
                   help="extra `ssh -o OPT`, repeatable (Port=2222, ConnectTimeout=5); host-key checking "
                        "cannot be turned off")
    g.add_argument("--dir", default=None, metavar="DIR",
                   help=f"the edgelite folder on the device (default {DEFAULT_DIR})")
    return g


def used_without_host(args: argparse.Namespace) -> list[str]:
    """The SSH flags given although --host was not (they would be ignored silently)."""
    if args.host:
        return []
    return ["--" + k.replace("_", "-") for k in SSH_FLAGS if k != "host" and getattr(args, k, None)]
