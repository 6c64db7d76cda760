"""A git smart-HTTP server for tests: `git http-backend` behind Basic auth.

A request passes only when its Basic password is an access token that the
provider's RFC 7662 introspection endpoint reports active, as a forge would.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import subprocess
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

log = logging.getLogger("rig.gitserver")

REALM = 'Basic realm="oauth-helper test"'
REPO_NAME = "repo.git"
BRANCH = "main"

# Fixed identity and dates make the initial commit the same in every test.
COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "Rig",
    "GIT_AUTHOR_EMAIL": "rig@example.test",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "Rig",
    "GIT_COMMITTER_EMAIL": "rig@example.test",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}


def isolated_git_env(home: Path) -> dict[str, str]:
    """An environment for server-side git that ignores the caller's git setup.

    Inherited GIT_* variables (GIT_DIR from a hook, GIT_CONFIG_GLOBAL, ...)
    would point git at the wrong repository or configuration.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)

    return env


def _git(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args], env=env, input=stdin, capture_output=True, text=True, check=True
    )

    return done.stdout.strip()


def create_repo(root: Path) -> Path:
    """Create root/repo.git, a bare repository with one commit on main."""
    repo = root / REPO_NAME
    env = {**isolated_git_env(root), **COMMIT_ENV, "GIT_DIR": str(repo)}
    _git(env, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(repo))
    # Plumbing rather than a clone-commit-push round trip: no work tree needed.
    blob = _git(env, "hash-object", "-w", "--stdin", stdin="hello from the rig\n")
    tree = _git(env, "mktree", stdin=f"100644 blob {blob}\tREADME\n")
    commit = _git(env, "commit-tree", tree, "-m", "Initial commit")
    _git(env, "update-ref", f"refs/heads/{BRANCH}", commit)
    _git(env, "config", "http.receivepack", "true")

    return repo


@dataclass
class Stats:
    """Request counters; the handler threads update them under a lock."""

    requests: int = 0
    unauthorized: int = 0
    authorized: int = 0
    tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, token: str | None, active: bool) -> None:
        with self.lock:
            self.requests += 1
            if active:
                self.authorized += 1
            else:
                self.unauthorized += 1
            if token:
                self.tokens.append(token)


class Introspector:
    """Asks the provider whether an access token is active (RFC 7662 §2)."""

    def __init__(self, endpoint: str, ca_path: str, client: tuple[str, str]) -> None:
        self.endpoint = endpoint
        self.client = client
        self.ca_path = ca_path
        self.session = requests.Session()
        # REQUESTS_CA_BUNDLE and proxy variables would override verify= and
        # route loopback traffic elsewhere; the rig trusts only its own CA.
        self.session.trust_env = False
        self.lock = threading.Lock()

    def active(self, token: str) -> dict[str, Any] | None:
        """The introspection answer if the token is active, else None."""
        with self.lock:
            response = self.session.post(
                self.endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self.client,
                verify=self.ca_path,
                timeout=10,
            )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()

        return answer if answer.get("active") is True else None

    def close(self) -> None:
        self.session.close()


class GitServer:
    """Serves root/repo.git over plain HTTP on 127.0.0.1 with token auth."""

    def __init__(
        self,
        root: Path,
        introspection_endpoint: str,
        ca_path: str,
        client: tuple[str, str] = ("git-server", "git-server-secret"),
    ) -> None:
        self.root = root
        self.repo = create_repo(root)
        self.introspector = Introspector(introspection_endpoint, ca_path, client)
        self.stats = Stats()
        self.cgi_env = isolated_git_env(root)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "GitServer is not started"

        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Clone URL of the repository, e.g. http://127.0.0.1:PORT/repo.git."""
        return f"http://127.0.0.1:{self.port}/{REPO_NAME}"

    @property
    def requests(self) -> int:
        return self.stats.requests

    @property
    def unauthorized(self) -> int:
        return self.stats.unauthorized

    def start(self) -> GitServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.git_server = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            # A short poll keeps stop() (shutdown) from taking half a second.
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="git-server",
            daemon=True,
        )
        self._thread.start()

        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.introspector.close()

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rev_parse(self, ref: str = BRANCH) -> str:
        """The commit a ref of the served repository points at."""
        env = {**self.cgi_env, "GIT_DIR": str(self.repo)}

        return _git(env, "rev-parse", ref)


class _Handler(BaseHTTPRequestHandler):
    server_version = "oauth-helper-rig-git/1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    @property
    def git_server(self) -> GitServer:
        return self.server.git_server  # type: ignore[attr-defined,no-any-return]

    def _serve(self) -> None:
        # Read the body first: answering 401 with it unread can reset the
        # connection before git has read the status line.
        body = self._read_body()
        username, token = self._basic_credentials()
        info = self.git_server.introspector.active(token) if token else None
        self.git_server.stats.count(token, info is not None)
        if info is None:
            self._unauthorized()
            return

        self._run_backend(body, username or str(info.get("sub", "user")))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)

        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        """Decode a chunked body (git sends one when it exceeds http.postBuffer)."""
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers

        return b"".join(chunks)

    def _basic_credentials(self) -> tuple[str | None, str | None]:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        username, _, password = decoded.partition(":")

        return username, password or None

    def _unauthorized(self) -> None:
        body = b"token missing, unknown or inactive\n"
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", REALM)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _run_backend(self, body: bytes, user: str) -> None:
        done = subprocess.run(
            ["git", "http-backend"],
            env=self._cgi_env(len(body), user),
            input=body,
            capture_output=True,
            check=False,
        )
        if done.stderr:
            log.info("http-backend: %s", done.stderr.decode(errors="replace").strip())
        self._relay(done.stdout)

    def _cgi_env(self, length: int, user: str) -> dict[str, str]:
        """CGI/1.1 variables for http-backend (see git-http-backend(1))."""
        url = urlsplit(self.path)
        env = {
            **self.git_server.cgi_env,
            "GIT_PROJECT_ROOT": str(self.git_server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(url.path),
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_ADDR": self.client_address[0],
            # http-backend allows receive-pack (push) only to a REMOTE_USER.
            "REMOTE_USER": user,
        }
        for header, variable in (
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
            ("Git-Protocol", "GIT_PROTOCOL"),
        ):
            if header in self.headers:
                env[variable] = self.headers[header]

        return env

    def _relay(self, output: bytes) -> None:
        """Turn CGI output (headers, blank line, body) into an HTTP response."""
        head, body = _split_cgi(output)
        status = HTTPStatus.OK.value
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _split_cgi(output: bytes) -> tuple[bytes, bytes]:
    """Split CGI output at its first blank line, CRLF or LF (RFC 3875 §6)."""
    ends = [
        (index, len(separator))
        for separator in (b"\r\n\r\n", b"\n\n")
        if (index := output.find(separator)) >= 0
    ]
    if not ends:
        return output, b""
    index, size = min(ends)

    return output[:index], output[index + size :]
