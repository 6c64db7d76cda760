"""The loopback redirect listener of a native app (RFC 8252 §7.3): it receives
the browser's redirect carrying the authorization response, or the address the
browser ended on, pasted on the terminal when that browser cannot reach us.
"""

import contextlib
import errno
import hmac
import html
import http.server
import logging
import queue
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any

from helper import http as _http
from helper import terminal
from helper.errors import ConfigError, FlowError

__all__ = ["Listener", "parse_redirect"]

log = logging.getLogger(__name__)

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>oauth-helper</title></head>
<body><p>{message}</p><p>You can close this tab.</p></body></html>
"""
# An idle browser connection (a speculative preconnect) must not hold a
# handler thread for long.
_SOCKET_TIMEOUT = 10.0
# How long a paste-aware wait looks at the terminal before it looks at the
# listener again: the delay a loopback redirect may see.
_POLL = 0.05
_PASTE_PROMPT = (
    "if the browser cannot reach this machine, paste the address it ended on "
    "here and press Enter"
)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # We close each connection first, so a fixed port sits in TIME_WAIT for a
    # minute after a login; SO_REUSEADDR lets the next login bind it. Not on
    # Windows, where that option lets another process take over the port.
    allow_reuse_address = sys.platform != "win32"

    def __init__(self, address: tuple[str, int], listener: "Listener") -> None:
        self.listener = listener
        super().__init__(address, _Handler)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = _SOCKET_TIMEOUT

    def do_GET(self) -> None:
        status, message = self.server.listener.offer(self.path)
        body = _PAGE.format(message=html.escape(message)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # The page URL holds the code: never pass it on as a Referer.
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes the request line, code included, to stderr.
        log.debug("loopback: %s", self.command)


class Listener:
    """Listens on loopback for one redirect carrying the expected ``state``."""

    def __init__(
        self, state: str, redirect_url: str = "", fallback_ports: tuple[int, ...] = ()
    ) -> None:
        self._state = state
        self._results: queue.Queue[dict[str, str]] = queue.Queue(maxsize=1)
        host, port, path = parse_redirect(redirect_url)
        # An empty path arrives as "/" (RFC 9110 §4.2.3) but is sent as given.
        self.path = path or "/"
        # Fallback ports only back up a fixed port; port 0 lets the OS choose.
        ports = (port, *fallback_ports) if port else (0,)
        self._server = _bind_first(host, ports, self)
        self.redirect_uri = _uri(host, self._server.server_address[1], path)
        # A short poll interval: close() waits up to one interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oauth-loopback",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def wait(self, timeout: float, paste: bool = False) -> dict[str, str]:
        """The query parameters of the redirect, or FlowError after *timeout* s.

        With *paste* and a terminal, an address pasted there counts too: a
        browser on another machine ends on a page this listener never sees.
        """
        tty = terminal.Terminal.open() if paste else None
        if tty is None:
            return self._next(timeout, timeout)

        with tty:
            log.warning(_PASTE_PROMPT)
            return self._wait_pasting(tty, timeout)

    def _wait_pasting(self, tty: "terminal.Terminal", timeout: float) -> dict[str, str]:
        # One thread polls both, so nothing is left reading the terminal once
        # this returns; a closed listener or a hung-up terminal ends the polling.
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and not tty.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for line in tty.lines(min(left, _POLL)):
                self._take_paste(line)
            with contextlib.suppress(queue.Empty):
                return self._results.get_nowait()

        return self._next(max(0.0, deadline - time.monotonic()), timeout)

    def _next(self, left: float, timeout: float) -> dict[str, str]:
        try:
            return self._results.get(timeout=left)
        except queue.Empty:
            raise FlowError(
                f"timed out after {timeout:g} s waiting for the browser to "
                f"return to {self.redirect_uri}; run the command again"
            ) from None

    def _take_paste(self, line: str) -> None:
        # The line holds the code: it is judged like a redirect, never logged.
        status, message = self.offer(_request_target(line))
        if status == 200:
            log.debug("loopback: received a pasted address")
            return

        log.debug("loopback: refused a pasted address (%d)", status)
        reason = "not this sign-in's redirect address" if status == 404 else message
        log.warning(
            "that address was not accepted (%s); paste the address the browser "
            "ended on, or keep waiting",
            reason.rstrip(".").lower(),
        )

    def offer(self, target: str) -> tuple[int, str]:
        """Judge one request target (a redirect or a paste): HTTP status, message."""
        parts = urllib.parse.urlsplit(target)
        if parts.path != self.path:
            return 404, "Not found."
        params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        if not hmac.compare_digest(params.get("state", ""), self._state):
            return 400, "This sign-in link is stale or was not started here."
        if "code" not in params and "error" not in params:
            return 400, "The sign-in response is incomplete."

        return self._accept(params)

    def _accept(self, params: dict[str, str]) -> tuple[int, str]:
        try:
            self._results.put_nowait(params)
        except queue.Full:
            return 400, "This sign-in response was already received."
        if "error" in params:
            return 200, f"Sign-in failed: {params['error'][:100]}."
        # The code is yet to be exchanged (and may still be refused): the
        # page claims no more than what happened, and points to where the
        # outcome shows.
        return 200, "Sign-in received. Close this tab; the terminal shows the outcome."


def _request_target(pasted: str) -> str:
    """The path and query of a pasted address, as a browser would request them.

    Scheme, host and port are dropped unread: a pasted URL proves nothing
    about where it came from. An absolute URL's empty path is "/" (RFC 9110
    §4.2.3), as the browser sends it.
    """
    try:
        parts = urllib.parse.urlsplit(pasted.strip())
    except ValueError:  # a malformed [IPv6] host, say: no path to judge
        return ""
    path = parts.path or ("/" if parts.netloc else "")
    return urllib.parse.urlunsplit(("", "", path, parts.query, ""))


def parse_redirect(redirect_url: str) -> tuple[str, int, str]:
    """Host, port (0: any) and path of a configured redirect URL, or ConfigError."""
    # No configured URL: 127.0.0.1 on a port the OS picks (RFC 8252 §7.3
    # recommends the literal IP over "localhost", §8.3).
    if not redirect_url:
        return "127.0.0.1", 0, "/"

    try:
        parts = urllib.parse.urlsplit(redirect_url)
    except ValueError:  # an unclosed "[", as in http://[::1
        raise ConfigError(f"redirect_url is not a URL: {redirect_url!r}") from None
    if parts.scheme != "http" or not _http.is_loopback(parts.hostname or ""):
        raise ConfigError(
            f"redirect_url must be http on a loopback host, got {redirect_url!r}"
        )
    try:
        port = parts.port or 0
    except ValueError:
        raise ConfigError(f"redirect_url has a bad port: {redirect_url!r}") from None
    return parts.hostname or "127.0.0.1", port, parts.path


def _bind_first(host: str, ports: tuple[int, ...], listener: Listener) -> _Server:
    # A provider that registers a fixed port may allow a few others: take the
    # first free one, in the order given.
    for port in ports:
        try:
            server = _bind(host, port, listener)
        except OSError as exc:
            busy = exc.errno in (errno.EADDRINUSE, errno.EACCES)
            if not busy or port == ports[-1]:
                raise ConfigError(_bind_failure(host, ports, exc)) from None
            log.debug("redirect port %s is busy: %s", port, exc.strerror)
            continue
        if port != ports[0]:
            # Some providers accept the first port only (Databricks' own
            # client, for now): a refused redirect then has this cause.
            log.warning(
                "redirect port %s is busy, using %s: if the sign-in page "
                "refuses the redirect URI, free port %s and try again",
                ports[0],
                port,
                ports[0],
            )
        return server
    raise AssertionError("no port to try")  # ports is never empty


def _bind_failure(host: str, ports: tuple[int, ...], exc: OSError) -> str:
    shown = f"port {ports[0]}" if len(ports) == 1 else f"ports {ports[0]}-{ports[-1]}"
    return f"cannot listen on {host} {shown} for the redirect: {exc.strerror}"


def _bind(host: str, port: int, listener: Listener) -> _Server:
    # Bind before the authorization URL exists, so it names a port we hold.
    # "localhost" binds 127.0.0.1: never a wildcard address.
    ipv6 = host.strip("[]") == "::1"
    server_class = _Server6 if ipv6 else _Server
    address = "::1" if ipv6 else ("127.0.0.1" if host == "localhost" else host)
    return server_class((address, port), listener)


def _uri(host: str, port: int, path: str) -> str:
    # The registered string, with the port filled in (RFC 8252 §7.3).
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"
