"""The preview's HTTP server, hardened for a shared network: no thread for a request that has not arrived.

A connection gets a handler thread only once its whole request head (request line + headers) has
arrived — `Gate` holds it until then, HEAD_TIMEOUT s at most, MAX_PENDING at once (the oldest dropped
first) — and only while fewer than the cap are being served: beyond it the client gets 503 at once,
before any thread is spent. 300 half-sent requests therefore cost 300 descriptors for a few seconds,
not 300 threads, and a well-behaved client still gets in. Standard library only.
"""

from __future__ import annotations

import http.server
import selectors
import socket
import threading
import time

MAX_CONNECTIONS = 32  # requests served at once, one thread each
MAX_PENDING = 256  # connections whose request head has not fully arrived (no thread yet)
HEAD_TIMEOUT = 5.0  # s a client has to send its request line and headers
SOCKET_TIMEOUT = 10.0  # s any read or write may block; a stalled stream viewer is dropped after it
STREAM_SNDBUF = 128 * 1024  # bytes of send buffer a stream viewer gets
MAX_HEAD = 16384  # bytes of request line + headers


class Gate:
    """Holds accepted connections, without a thread, until their request head is complete.

    One selector thread watches them; a complete head gets a handler thread if fewer than
    `max_connections` run (else 503 at once); a head not complete within HEAD_TIMEOUT is dropped, and
    so is the oldest waiting connection when MAX_PENDING wait. Half-sent requests cost a descriptor for
    a few seconds, never a thread, and cannot keep a well-behaved client out.
    """

    def __init__(self, server: GatedHTTPServer, max_connections: int):
        self.server, self.max_connections = server, max_connections
        self.lock = threading.Lock()
        self.active = 0
        self.new: list = []  # (sock, addr) from the accept thread
        self.pending: dict = {}  # sock -> (addr, deadline), oldest first
        self.partial: set = set()  # pending sockets with part of a head: re-read each tick, not selected
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ)
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="preview-gate", daemon=True)
        self.thread.start()

    def add(self, sock, addr) -> None:
        with self.lock:
            self.new.append((sock, addr))
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # the wake-up pipe is full: the gate is awake anyway

    def release(self) -> None:
        with self.lock:
            self.active -= 1

    def close(self) -> None:
        self.closed = True
        self.add(None, None)
        self.thread.join(2.0)
        for sock in list(self.pending):
            self._drop(sock)
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _loop(self) -> None:
        while not self.closed:
            events = self.sel.select(0.05 if self.partial else 0.5)
            with self.lock:
                new, self.new = self.new, []
            for sock, addr in new:
                if sock is None:
                    continue
                while len(self.pending) >= MAX_PENDING:
                    self._drop(next(iter(self.pending)))  # the oldest: likely a stalled one
                sock.setblocking(False)
                self.pending[sock] = (addr, time.monotonic() + HEAD_TIMEOUT)
                self.sel.register(sock, selectors.EVENT_READ)
            ready = set(self.partial)
            for key, _ in events:
                if key.fileobj is self._wake_r:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                else:
                    ready.add(key.fileobj)
            for sock in ready:
                if sock in self.pending:
                    self._check(sock)
            now = time.monotonic()
            for sock in [s for s, (_, deadline) in self.pending.items() if now > deadline]:
                self._drop(sock)

    def _check(self, sock) -> None:
        try:
            head = sock.recv(MAX_HEAD, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError:
            return self._drop(sock)
        if not head:
            return self._drop(sock)  # closed before it asked anything
        if b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) < MAX_HEAD:
            if sock not in self.partial:  # level-triggered select would spin on it: poll it each tick instead
                self.sel.unregister(sock)
                self.partial.add(sock)
            return
        addr, _ = self._forget(sock)
        with self.lock:
            full = self.active >= self.max_connections
            if not full:
                self.active += 1
        if full:
            return self.server.refuse(sock)
        sock.setblocking(True)
        threading.Thread(target=self.server.process_request_thread, args=(sock, addr), daemon=True).start()

    def _forget(self, sock):
        if sock in self.partial:
            self.partial.discard(sock)
        else:
            self.sel.unregister(sock)
        return self.pending.pop(sock)

    def _drop(self, sock) -> None:
        self._forget(sock)
        self.server.shutdown_request(sock)


class GatedHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # a burst of connections (300 half-open in the load test) must not overflow the listen queue while the
    # accept loop catches up: a dropped SYN costs a good client the kernel's 1 s retransmit (one full-suite
    # run saw /healthz take 1.004 s here; not reproduced since, with or without this)
    request_queue_size = 512
    gate: Gate

    def process_request(self, request, client_address):
        self.gate.add(request, client_address)  # no thread until the request head is in (see _Gate)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.gate.release()

    def refuse(self, sock) -> None:
        """503 without a thread: one non-blocking send, then close."""
        try:
            sock.setblocking(False)
            sock.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
                      b"Retry-After: 5\r\nConnection: close\r\n\r\ntoo many connections\n")
        except OSError:
            pass
        self.shutdown_request(sock)


def serve_gated(host: str, port: int, handler, connections: int, name: str,
                **attrs) -> tuple[GatedHTTPServer, threading.Thread]:
    """A GatedHTTPServer on (host, port) (IPv6 when the host is), `attrs` set on it for the handler, serving in a
    daemon thread; raises OSError when it cannot listen. `stop_gated` ends it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = type(f"_{name.title()}HTTPServer", (GatedHTTPServer,), {"address_family": family})((host, port), handler)
    for key, value in attrs.items():
        setattr(server, key, value)
    server.gate = Gate(server, connections)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
    thread.start()
    return server, thread


def stop_gated(server: GatedHTTPServer | None, thread: threading.Thread | None) -> None:
    """Stop what `serve_gated` started: no new requests, open connections closed, the thread joined (2 s at most)."""
    if server is not None:
        server.shutdown()
        server.gate.close()
        server.server_close()
    if thread is not None:
        thread.join(2.0)
