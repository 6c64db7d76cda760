"""Run tests/rig/provider.js as a child process and drive its /_test/ knobs."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import requests

RIG_DIR = Path(__file__).resolve().parent
PROVIDER_JS = RIG_DIR / "provider.js"
CLIENT_ID = "helper-test"
GIT_SERVER_CLIENT = ("git-server", "git-server-secret")
DEFAULT_ACCESS_TTL = 3600


class ProviderNotInstalled(RuntimeError):
    """tests/rig/node_modules is missing."""


class Provider:
    """A running provider.js: its issuer, endpoints and test controls."""

    client_id = CLIENT_ID

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        issuer: str,
        ca_path: str,
        log_path: Path,
    ) -> None:
        self.process = process
        self.port = port
        self.issuer = issuer
        self.ca_path = ca_path
        self.log_path = log_path
        # Admin calls go to 127.0.0.1 even when the issuer uses a test host
        # name that only Chromium (or the helper's resolver) knows.
        self.admin_base = f"https://127.0.0.1:{port}{urlsplit(issuer).path}"
        self.session = requests.Session()
        # REQUESTS_CA_BUNDLE would silently override verify=; ignore the env.
        self.session.trust_env = False
        self.session.verify = ca_path

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def device_authorization_endpoint(self) -> str:
        return f"{self.issuer}/device/auth"

    @property
    def introspection_endpoint(self) -> str:
        return f"{self.issuer}/token/introspection"

    def counts(self) -> dict[str, int]:
        """Token-endpoint requests by grant type, plus "total"."""
        counts: dict[str, int] = self._admin("GET", "counts")

        return counts

    def reset(self) -> None:
        """Zero the token-endpoint counts."""
        self._admin("POST", "reset")

    def set_access_ttl(self, seconds: int) -> None:
        """Lifetime (expires_in) of access tokens issued from now on."""
        self._admin("POST", "ttl", access=seconds)

    def delay(self, ms: int) -> None:
        """Add latency to every token-endpoint request (0 to stop)."""
        self._admin("POST", "delay", ms=ms)

    def revoke_refresh(self) -> int:
        """Make every outstanding refresh token fail with invalid_grant."""
        revoked: int = self._admin("POST", "revoke-refresh")["revoked"]

        return revoked

    def revoke_access(self) -> int:
        """Make every outstanding access token inactive at introspection."""
        revoked: int = self._admin("POST", "revoke-access")["revoked"]

        return revoked

    def restore_defaults(self) -> None:
        """Undo the knobs a test may have turned (TTL, delay)."""
        self.set_access_ttl(DEFAULT_ACCESS_TTL)
        self.delay(0)

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection as the git server's client."""
        response = self.session.post(
            self.admin_url(self.introspection_endpoint),
            data={"token": token},
            auth=GIT_SERVER_CLIENT,
            timeout=10,
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()

        return answer

    def admin_url(self, url: str) -> str:
        """An issuer URL rewritten to 127.0.0.1 (see admin_base)."""
        return self.admin_base + url.removeprefix(self.issuer)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the provider's stderr, for failure messages."""
        text = (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        self.session.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _admin(self, method: str, name: str, **params: int) -> Any:
        response = self.session.request(
            method, f"{self.admin_base}/_test/{name}", params=params, timeout=10
        )
        response.raise_for_status()

        return response.json()


def start_provider(
    ca_path: str,
    cert_path: str,
    key_path: str,
    log_path: Path,
    *,
    issuer_path: str = "",
    hostname: str = "127.0.0.1",
    timeout: float = 60,
) -> Provider:
    """Start provider.js on a free port and wait for its READY line."""
    if not (RIG_DIR / "node_modules" / "oidc-provider").is_dir():
        raise ProviderNotInstalled(
            "tests/rig/node_modules is missing: run scripts/install "
            "(or npm ci --prefix tests/rig)"
        )
    env = {
        **os.environ,
        "PORT": "0",
        "TLS_CERT": cert_path,
        "TLS_KEY": key_path,
        "ISSUER_PATH": issuer_path,
        # Set even for the default: containers often export HOSTNAME.
        "HOSTNAME": hostname,
        "NODE_EXTRA_CA_CERTS": ca_path,
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["node", str(PROVIDER_JS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    port = _wait_ready(process, log_path, timeout)
    issuer = f"https://{hostname}:{port}{issuer_path.rstrip('/')}"

    return Provider(process, port, issuer, ca_path, log_path)


def _wait_ready(
    process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> int:
    """The port from "READY <port>", or an error carrying the provider's log."""
    assert process.stdout is not None
    line = _readline(process.stdout, time.monotonic() + timeout)
    if not line.startswith(b"READY "):
        process.kill()
        process.wait()
        process.stdout.close()
        log = log_path.read_text(errors="replace")
        raise RuntimeError(f"provider.js did not start ({line!r}):\n{log}")

    return int(line.split()[1])


def _readline(stream: IO[bytes], deadline: float) -> bytes:
    # provider.js writes READY in one write, so one readable event suffices.
    remaining = max(0.0, deadline - time.monotonic())
    ready, _, _ = select.select([stream], [], [], remaining)

    return stream.readline() if ready else b""
