"""An SSH destination as users write it: `user@host`, `user@host:port`, `host`, `ssh://user@host:port`,
`user@[::1]:2222`. Used by every command that reaches a device (`deploy`, `bench --host`); standard
library only.

    >>> t = parse_target("pi@raspberrypi.local:2222")
    >>> (t.user, t.host, t.port, t.destination, str(t))
    ('pi', 'raspberrypi.local', 2222, 'pi@raspberrypi.local', 'pi@raspberrypi.local:2222')
"""

from __future__ import annotations

import dataclasses

from edgelite.remote.errors import EXIT_USAGE, RemoteError


@dataclasses.dataclass(frozen=True)
class Target:
    user: str | None
    host: str
    port: int | None = None

    @property
    def destination(self) -> str:
        """user@host for ssh/rsync (IPv6 literals without brackets for ssh, with them for rsync)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}{f':{self.port}' if self.port else ''}"


#: never in a host or user name; ssh/rsync/scp would pass them on to a shell (ProxyCommand, %h, scp -O)
SHELL_CHARS = set(";$|&`<>(){}*?!\\\"'")


def parse_target(value: str) -> Target:
    """Parse an SSH destination; a RemoteError (exit code 2) that names --host when it is not one.

    A destination starting with `-` is refused: ssh would read it as an option (`-oProxyCommand=...`).
    """
    try:
        return _parse(value)
    except ValueError as e:
        raise RemoteError(f"--host {value!r}: {e}", EXIT_USAGE) from None


def _parse(value: str) -> Target:
    v = value.strip()
    if v.startswith("ssh://"):
        v = v[len("ssh://"):].rstrip("/")
    user, _, hostport = v.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("unclosed '[' in an IPv6 address")
        host, rest = hostport[1:end], hostport[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError("expected [IPv6]:PORT")
            port = rest[1:]
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    if v.startswith("-"):
        raise ValueError("a destination starting with '-' would reach ssh as an option")
    if not host or any(c in host for c in " /\\'\"") or (user and any(c in user for c in " :/'\"")):
        raise ValueError("expected user@host or user@host:port")
    if any(c in SHELL_CHARS or c.isspace() for c in user + host):
        raise ValueError("a host or user name has no shell characters (;$|&`<>(){}*?!\\ or spaces); "
                         "give the device's name or address")
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("port must be a number 1..65535")
        port = int(port)
    return Target(user or None, host, port)
