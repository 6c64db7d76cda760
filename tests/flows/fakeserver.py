"""A deliberately misbehaving HTTP(S) server on 127.0.0.1 for fault cases.

Each path has a script of replies, played in order (the last one repeats),
or a function of the request. Every request is recorded with its arrival
time, so tests can check what was sent and how often.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme

# A device authorization response (RFC 8628 §3.2) for a fake device endpoint,
# with an interval short enough for a test.
DEVICE_GRANT = {
    "device_code": "device-code-value",
    "user_code": "WDJB-MJHT",
    "verification_uri": "https://id.example/device",
    "expires_in": 60,
    "interval": 0.05,
}


@dataclasses.dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclasses.dataclass
class Reply:
    """What to answer: a JSON object, raw text, or a dropped connection."""

    status: int = 200
    body: object = dataclasses.field(default_factory=dict)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    close: bool = False
    delay: float = 0.0
    # Seconds between the bytes of the whole answer, status line included:
    # each read is quick, the answer never is.
    drip: float = 0.0


Script = list[Reply] | Callable[[Seen], Reply]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        seen = self._record()
        reply = self.server.fake.pick(seen)
        time.sleep(reply.delay)
        if reply.close:
            self.close_connection = True
            return
        self._send(reply)

    def _record(self) -> Seen:
        parts = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        seen = Seen(
            method=self.command,
            path=parts.path,
            query=dict(urllib.parse.parse_qsl(parts.query)),
            form=dict(urllib.parse.parse_qsl(raw)),
            headers={k.lower(): v for k, v in self.headers.items()},
            at=time.monotonic(),
        )
        self.server.fake.requests.append(seen)
        return seen

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, str):
            data, kind = reply.body.encode(), "text/html"
        else:
            data, kind = json.dumps(reply.body).encode(), "application/json"
        if reply.drip:
            self._drip(reply, data, kind)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drip(self, reply: Reply, data: bytes, kind: str) -> None:
        head = (
            f"HTTP/1.1 {reply.status} OK\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        for byte in head.encode() + data:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(reply.drip)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) leaves a broken pipe: expected.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeServer:
    """Start with ``with FakeServer() as fake:``; ``fake.url("/token")``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Script] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}
        )

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.origin + path

    def route(self, path: str, *replies: Reply | Callable[[Seen], Reply]) -> None:
        """Answer *path* with *replies* in turn, or with one function."""
        if len(replies) == 1 and callable(replies[0]):
            self.routes[path] = replies[0]
        else:
            self.routes[path] = [r for r in replies if isinstance(r, Reply)]

    def pick(self, seen: Seen) -> Reply:
        with self._lock:
            script = self.routes.get(seen.path)
            if script is None:
                return Reply(404, {"error": "not_found"})
            if callable(script):
                return script(seen)
            return script.pop(0) if len(script) > 1 else script[0]

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]


def tls_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 from a throwaway CA, and that CA's file."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_path = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return context, ca_path
