"""The `--http [HOST:]PORT` address rule, and which addresses only this machine can reach. Standard library
only: `run --http` (the preview binds it), `deploy --http` (what the device's service binds) and the
device agent's health check (`local_url`) share it.
"""

from __future__ import annotations

from edgelite.errors import UsageError

#: where `--http PORT` binds (run's preview) and where a wildcard bind is reached from the same machine
LOOPBACK = "127.0.0.1"


def parse_http_address(value: str, *, error: type[Exception] = UsageError) -> tuple[str, int]:
    """`--http` -> (host, port): '8080' | 'HOST:8080' | '[::1]:8080'; a bare port (or ':8080') is 127.0.0.1.

    One rule for `run --http` (the preview binds it) and `deploy --http` (what the device's service
    binds and the health check probes); a bad value raises `error`.

    >>> parse_http_address("8080"), parse_http_address("[::]:9000")
    (('127.0.0.1', 8080), ('::', 9000))
    """
    v = value.strip()
    host, port_s = LOOPBACK, v
    if v.startswith("["):
        end = v.find("]")
        if end < 0 or not v[end + 1:].startswith(":"):
            raise error(f"--http {value!r}: expected [IPv6]:PORT")
        host, port_s = v[1:end], v[end + 2:]
    elif ":" in v:
        host, port_s = v.rsplit(":", 1)
        host = host or LOOPBACK
    try:
        port = int(port_s)
    except ValueError:
        raise error(f"--http {value!r}: expected PORT or HOST:PORT (e.g. 127.0.0.1:8080)") from None
    if not 0 <= port <= 65535:
        raise error(f"--http {value!r}: port must be 0..65535")
    return host, port


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost); a host name may
    resolve to anything, so it counts as exposed.

    >>> is_loopback("127.0.0.2"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("cam.local")
    (True, True, False, False)
    """
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_url(http: str, path: str = "/") -> str:
    """The URL that reaches a server bound at `--http` from the same machine (a wildcard bind through the
    loopback).

    >>> local_url("0.0.0.0:9000", "/healthz"), local_url("[::]:9000")
    ('http://127.0.0.1:9000/healthz', 'http://[::1]:9000/')
    """
    host, port = parse_http_address(http)
    host = {"0.0.0.0": LOOPBACK, "::": "::1", "localhost": LOOPBACK}.get(host, host)
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"
