"""The review page's web server: standard library http.server, bound to 127.0.0.1 unless told otherwise.

=======================  ==================================================================
``GET /``                the page (one HTML file, its script inline; nothing from the internet)
``GET /api/groups``      one page of groups, most uncertain first: ``?page=N&per=M`` (M <= 500)
``GET /thumb/ID``        the thumbnail of frame ID (a number: no path ever comes from a request)
``POST /api/decide``     ``{"group": G, "action": "label"|"discard"|"skip", "label": L}``
``POST /api/undo``       take back the last decision
``POST /api/confirm``    delete the discarded frames (the only deletion)
=======================  ==================================================================

Another address than the loopback needs a token (`--token` or EDGELITE_TOKEN), given as ``?token=T`` or
``Authorization: Bearer T`` on every request. A POST must carry ``Content-Type: application/json`` (a
page on another site cannot send that without a CORS preflight, which this server never grants) and
a Host header naming this server (no DNS rebinding).
"""

from __future__ import annotations

import hmac
import html
import http.server
import json
import logging
import threading
from urllib.parse import parse_qs, quote, urlsplit

from edgelite.device.outputs.preview_server import (
    MAX_CONNECTIONS,
    SOCKET_TIMEOUT,
    GatedHTTPServer,
    serve_gated,
    stop_gated,
)
from edgelite.http_address import is_loopback, parse_http_address
from edgelite.review.errors import ReviewError
from edgelite.review.page import PAGE
from edgelite.review.store import Store

log = logging.getLogger("edgelite.review")
MAX_PER_PAGE = 500
MAX_BODY = 4096


class ReviewServer:
    """Start with `start()`, stop with `close()`; `url` is where a browser on this machine opens it."""

    def __init__(self, store: Store, address: str = "127.0.0.1:8090", token: str | None = None, title: str = ""):
        host, port = parse_http_address(address, error=ReviewError)
        if not is_loopback(host) and not token:
            raise ReviewError(f"--http {address}: binding {host} shows your frames to the network; set --token "
                              "(or EDGELITE_TOKEN) or bind 127.0.0.1")
        self.host, self.port, self.token, self.store, self.title = host, port, token or None, store, title
        self._server: GatedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={quote(self.token, safe='')}" if self.token else "")

    def start(self) -> ReviewServer:
        try:
            self._server, self._thread = serve_gated(self.host, self.port, _Handler, MAX_CONNECTIONS, "review",
                                                     review=self)
        except OSError as e:
            raise ReviewError(f"--http {self.host}:{self.port}: cannot listen ({e.strerror or e}); pick another "
                              "port, e.g. --http 8091") from None
        self.port = self._server.server_address[1]
        return self

    def close(self) -> None:
        stop_gated(self._server, self._thread)
        self._server = self._thread = None

    # ------------------------------------------------------------------ what the API returns
    def groups_page(self, page: int, per: int) -> dict:
        s = self.store
        ix = s.index
        total = len(ix.order)
        pages = max(1, -(-total // per))
        page = min(max(0, page), pages - 1)
        items = []
        for g in ix.order[page * per:(page + 1) * per]:
            f = ix.representative(g)
            d = s.decided.get(g)
            items.append({"group": g, "frame": f.id, "n": len(ix.groups[g]), "name": f.rel, "device": f.device,
                          "time": f.time, "top": [[lab, round(sc, 3)] for lab, sc in s.top(f)[:3]],
                          "unreadable": f.id in ix.unreadable,
                          "decided": None if d is None else {"action": d.action, "label": d.label}})
        return {"page": page, "pages": pages, "per": per, "groups": total, "frames": len(ix.frames),
                "labels": s.labels, "model": s.model, "decided": len(s.decided),
                "discarded_waiting": s.discarded_waiting(), "items": items}


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "edgelite-review"
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT
    disable_nagle_algorithm = True  # a kept-alive connection's next reply must not wait 40 ms for an ACK

    def log_message(self, fmt, *args):
        log.debug("review %s %s", self.address_string(), fmt % args)

    @property
    def review(self) -> ReviewServer:
        return self.server.review  # type: ignore[attr-defined]

    def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None, keep: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if not keep:  # a thumbnail keeps its connection: 500 of them over 6 connections, not 500 handshakes
            self.send_header("Connection", "close")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self'; "
                         "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'")
        self.close_connection = not keep
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, (json.dumps(obj) + "\n").encode(), "application/json", {"Cache-Control": "no-store"})

    def _error(self, code: int, message: str) -> None:
        self._json(code, {"error": message})

    def _token(self, query: dict) -> str:
        t = query.get("token", [""])[0]
        auth = self.headers.get("Authorization", "")
        if not t and auth.lower().startswith("bearer "):
            t = auth[7:].strip()
        return t

    def _allowed(self, query: dict) -> bool:
        token = self.review.token
        return not token or hmac.compare_digest(self._token(query).encode(), token.encode())

    def _host_ok(self) -> bool:
        """The Host header names this server (an address, or localhost): a rebound DNS name is refused."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if host == "localhost":
            return True
        import ipaddress

        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            return not is_loopback(self.review.host)  # bound to the network on purpose: its names are the user's

    def _gate(self) -> dict | None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._host_ok():
            self._error(403, "unknown Host: open the page at the address `edgelite review` printed")
            return None
        if not self._allowed(query):
            body = {"error": "token required: add ?token=... or an Authorization: Bearer header"}
            self._send(401, (json.dumps(body) + "\n").encode(), "application/json", {"WWW-Authenticate": "Bearer"})
            return None
        return {"path": url.path, "query": query}

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        req = self._gate()
        if req is None:
            return
        path, query = req["path"], req["query"]
        r = self.review
        if path in ("/", "/index.html"):
            token = self._token(query)
            qs = f"?token={quote(token, safe='')}" if token else ""
            page = PAGE.replace("__TITLE__", html.escape(r.title)).replace("__QS__", json.dumps(qs))
            return self._send(200, page.encode(), "text/html; charset=utf-8", {"Cache-Control": "no-store"})
        if path == "/api/groups":
            try:
                page = int(query.get("page", ["0"])[0])
                per = int(query.get("per", ["200"])[0])
            except ValueError:
                return self._error(400, "page and per must be numbers")
            if not 1 <= per <= MAX_PER_PAGE:
                return self._error(400, f"per must be 1..{MAX_PER_PAGE}")
            with r.store.lock:
                return self._json(200, r.groups_page(page, per))
        if path.startswith("/thumb/"):
            ident = path[len("/thumb/"):]
            if not ident.isdigit() or int(ident) >= len(r.store.index.frames):
                return self._error(404, "no such frame")
            data = r.store.index.thumbnail(int(ident))
            if data is None:
                return self._error(415, "not an image")
            return self._send(200, data, "image/jpeg", {"Cache-Control": "private, max-age=3600"}, keep=True)
        return self._error(404, "not found")

    def do_POST(self):
        req = self._gate()
        if req is None:
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._error(415, "send JSON (Content-Type: application/json)")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_BODY:
            return self._error(413, f"a request body is at most {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self._error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return self._error(400, "the body must be a JSON object")
        store, path = self.review.store, req["path"]
        try:
            if path == "/api/decide":
                d = store.decide(body.get("group"), str(body.get("action", "")), str(body.get("label", "")))
                return self._json(200, {"group": d.group, "action": d.action, "label": d.label, "frames": len(d.moves)})
            if path == "/api/undo":
                d = store.undo()
                return self._json(200, {"undone": None if d is None else {"group": d.group, "action": d.action}})
            if path == "/api/confirm":
                return self._json(200, {"deleted": store.confirm()})
        except ReviewError as e:
            return self._error(400, str(e))
        return self._error(404, "not found")
