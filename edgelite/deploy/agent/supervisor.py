"""The supervisor: what systemd does for the unit, for devices without it (containers, the Pi emulator).

Started as `python3 DIR/agent.pyz supervise --dir DIR` (by `service start` in supervisor mode), it runs
`DIR/current/run` with Restart=on-failure and a start limit, speaks sd_notify over a NOTIFY_SOCKET it
owns (READY=1 within TimeoutStartSec, WATCHDOG=1 within WatchdogSec), stops with TimeoutStopSec, keeps
a pidfile and run/state.json, and writes a size-rotated log/edgelite.log. The systemd unit uses the
same numbers (`service.render_unit`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from edgelite.deploy.agent.layout import Layout, pid_alive_with
from edgelite.jsonfile import read_json, write_json

RESTART_SEC = 2.0  # Restart= delay
START_LIMIT_BURST, START_LIMIT_INTERVAL = 5, 60.0
WATCHDOG_SEC = 30
TIMEOUT_START_SEC = 300  # model load on a Pi Zero 2 / under qemu
TIMEOUT_STOP_SEC = 10
LOG_MAX_BYTES = 5 << 20


def supervisor_pid(lay: Layout) -> int | None:
    try:
        pid = int(lay.supervisor_pid.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive_with(pid, "supervise", str(lay.root)) else None


def supervisor_stop(lay: Layout, timeout: float = TIMEOUT_STOP_SEC + 5) -> None:
    pid = supervisor_pid(lay)
    if pid is None:
        lay.supervisor_pid.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and supervisor_pid(lay):
        time.sleep(0.1)
    if supervisor_pid(lay):
        child = (read_json(lay.state) or {}).get("pid")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if child and pid_alive_with(child, "edgelite"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    lay.supervisor_pid.unlink(missing_ok=True)


class Supervisor:
    """What systemd does for the unit, for devices without it: Restart=on-failure with a start limit,
    Type=notify (READY=1 within TimeoutStartSec), WatchdogSec, TimeoutStopSec, a log with timestamps."""

    def __init__(self, lay: Layout):
        self.lay = lay
        self.stopping = False
        self.state: dict = {"supervisor_pid": os.getpid(), "state": "starting", "restarts": 0, "exits": [],
                            "ready": False, "pid": None}
        self.log_lock = threading.Lock()
        self.logf = open(lay.log, "a", encoding="utf-8", errors="replace")

    def log(self, line: str) -> None:
        with self.log_lock:
            if self.logf.tell() > LOG_MAX_BYTES:
                self.logf.close()
                os.replace(self.lay.log, self.lay.log.with_suffix(".log.1"))
                self.logf = open(self.lay.log, "a", encoding="utf-8", errors="replace")
            self.logf.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line.rstrip()}\n")
            self.logf.flush()

    def save(self) -> None:
        write_json(self.lay.state, self.state)

    def _notify_socket(self) -> tuple[socket.socket, str, str]:
        path = self.lay.run / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if len(str(path)) < 100:
            path.unlink(missing_ok=True)
            sock.bind(str(path))
            return sock, str(path), str(path)
        name = "edgelite-" + hashlib.sha256(str(self.lay.root).encode()).hexdigest()[:16]
        sock.bind("\0" + name)  # a deep DIR: sun_path holds 108 bytes, so use the abstract namespace
        return sock, "@" + name, ""

    def _pump(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.log(raw.decode("utf-8", "replace"))

    def run(self) -> int:
        lay = self.lay
        lay.supervisor_pid.write_text(f"{os.getpid()}\n")
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        sock, address, sock_path = self._notify_socket()
        sock.settimeout(0.25)
        starts: list[float] = []
        try:
            while not self.stopping:
                now = time.monotonic()
                starts = [t for t in starts if now - t < START_LIMIT_INTERVAL] + [now]
                if len(starts) > START_LIMIT_BURST:
                    self.log(f"supervisor: start limit hit ({START_LIMIT_BURST} starts in {START_LIMIT_INTERVAL:.0f} s); "
                             "giving up (like systemd's StartLimitBurst)")
                    self.state["state"] = "failed"
                    self.save()
                    return 1
                code = self._run_once(sock, address)
                if self.stopping:
                    break
                self.state["exits"].append({"code": code, "at": time.time(), "release": self.state.get("release")})
                self.state["exits"] = self.state["exits"][-20:]
                if code == 0:
                    self.log("supervisor: the service exited cleanly; not restarting (Restart=on-failure)")
                    self.state["state"] = "exited"
                    self.save()
                    return 0
                self.state.update(state="restarting", restarts=self.state["restarts"] + 1)
                self.save()
                self.log(f"supervisor: the service failed (exit {code}); restarting in {RESTART_SEC:.0f} s")
                deadline = time.monotonic() + RESTART_SEC
                while not self.stopping and time.monotonic() < deadline:
                    time.sleep(0.1)
            self.state["state"] = "stopped"
            self.save()
            return 0
        finally:
            sock.close()
            if sock_path:
                Path(sock_path).unlink(missing_ok=True)
            lay.supervisor_pid.unlink(missing_ok=True)
            self.log("supervisor: exiting")

    def _on_term(self, signum, _frame) -> None:
        self.stopping = True

    def _run_once(self, sock: socket.socket, address: str) -> int:
        lay = self.lay
        rid = lay.current_rid()
        env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC=str(WATCHDOG_SEC * 1_000_000),
                   EDGELITE_SUPERVISED="1")
        env.pop("WATCHDOG_PID", None)
        try:
            child = subprocess.Popen([str(lay.current / "run")], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(lay.root), close_fds=True)
        except OSError as e:
            self.log(f"supervisor: cannot start {lay.current / 'run'}: {e}")
            return 203  # systemd's EXEC status
        self.state.update(pid=child.pid, release=rid, ready=False, status=None, state="starting",
                          started_at=time.time())
        self.save()
        self.log(f"supervisor: started release {rid} (pid {child.pid})")
        pump = threading.Thread(target=self._pump, args=(child.stdout,), daemon=True)
        pump.start()
        t_start = last_ping = time.monotonic()
        killed_for, aborted_at = None, float("inf")
        while True:
            code = child.poll()
            if code is not None:
                break
            if self.stopping and killed_for is None:
                killed_for = "stop"
                self._terminate(child)
                continue
            try:
                data = sock.recv(4096)
            except TimeoutError:
                data = b""
            now = time.monotonic()
            if data:
                fields = dict(ln.split("=", 1) for ln in data.decode(errors="replace").splitlines() if "=" in ln)
                if fields.get("READY") == "1" and not self.state["ready"]:
                    self.state.update(ready=True, state="running")
                    self.log("supervisor: READY" + (f" ({fields['STATUS']})" if fields.get("STATUS") else ""))
                    last_ping = now
                if fields.get("WATCHDOG") == "1":
                    last_ping = now
                if "STATUS" in fields:
                    self.state["status"] = fields["STATUS"]
                if fields.get("STOPPING") == "1":
                    self.state["state"] = "stopping"
                self.save()
            if killed_for:
                if killed_for == "watchdog" and now - aborted_at > TIMEOUT_STOP_SEC:
                    self.log(f"supervisor: pid {child.pid} did not end on SIGABRT; killing it")
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                    aborted_at = float("inf")
                continue
            if not self.state["ready"] and now - t_start > TIMEOUT_START_SEC:
                killed_for = "start timeout"
                self.log(f"supervisor: no READY=1 within {TIMEOUT_START_SEC} s; stopping pid {child.pid}")
                self._terminate(child)
            elif self.state["ready"] and now - last_ping > WATCHDOG_SEC:
                killed_for, aborted_at = "watchdog", now
                self.log(f"supervisor: watchdog timeout ({WATCHDOG_SEC} s without WATCHDOG=1); aborting pid {child.pid}")
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGABRT)
        pump.join(timeout=2)
        code = child.returncode
        if killed_for in ("start timeout", "watchdog") and code == 0:
            code = 1
        self.log(f"supervisor: pid {child.pid} exited with {describe_exit(code)}")
        return code if code >= 0 else 128 - code

    def _terminate(self, child: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            child.wait(TIMEOUT_STOP_SEC)
        except subprocess.TimeoutExpired:
            self.log(f"supervisor: pid {child.pid} ignored SIGTERM for {TIMEOUT_STOP_SEC} s; killing it")
            child.kill()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"

