"""The systemd notify protocol (sd_notify(3)) with the standard library: READY=1, WATCHDOG=1, STATUS=…

Does nothing unless systemd set NOTIFY_SOCKET (a `Type=notify` unit). With `WatchdogSec=` in the unit
systemd also sets WATCHDOG_USEC; the loop then calls `tick()` on every iteration and we ping at half
that interval, so a hung loop (not a slow one) gets restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("edgelite.device")


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if addr.startswith("@"):  # abstract namespace socket
            self.address = "\0" + addr[1:]
        elif addr.startswith("/"):
            self.address = addr
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 2e6
        self._sock: socket.socket | None = None
        self._last_ping = 0.0
        if self.address is not None:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            except OSError as e:
                log.warning("systemd notify socket unavailable: %s", e)
                self.address = None

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send 'KEY=value' fields in one datagram. False (never an exception) when it cannot be sent."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as e:
            log.debug("sd_notify failed: %s", e)
            return False

    def ready(self, status: str | None = None) -> None:
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def tick(self) -> None:
        """Ping the watchdog when half its interval has passed (cheap to call every frame)."""
        if self.watchdog_interval is None or self._sock is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> None:
        self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
