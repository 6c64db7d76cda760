"""Self-tests of the integration rig: each piece is real and behaves as relied on."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from rig.browser import approve, is_loopback
from rig.ca import RigCA
from rig.devpages import approve_fast
from rig.gitserver import GitServer
from rig.idp import Provider, start_provider

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def http(provider: Provider) -> Iterator[requests.Session]:
    """A session trusting only the rig CA, whatever REQUESTS_CA_BUNDLE says."""
    with requests.Session() as session:
        session.trust_env = False
        session.verify = provider.ca_path
        yield session


class CallbackListener:
    """A one-shot loopback redirect listener, like the helper's (RFC 8252 §7.3)."""

    def __init__(self) -> None:
        self.query: dict[str, list[str]] = {}
        self.received = threading.Event()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.query = parse_qs(urlsplit(self.path).query)
                listener.received.set()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"You can close this window.\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.handle_request, daemon=True)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/callback"

    def __enter__(self) -> CallbackListener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.received.is_set():
            # Unblock handle_request() with a request of our own.
            connection = HTTPConnection("127.0.0.1", self.server.server_port, timeout=5)
            connection.request("GET", "/unblock")
            connection.getresponse().read()
            connection.close()
        self.thread.join(timeout=5)
        self.server.server_close()


def pkce_pair() -> tuple[str, str]:
    """A code_verifier and its S256 code_challenge (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()

    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def device_login(
    http: requests.Session, provider: Provider, *, browser: bool = False
) -> dict[str, Any]:
    """Tokens from a device-flow login, approved by form posts or the browser."""
    device = http.post(
        provider.device_authorization_endpoint,
        data={"client_id": provider.client_id, "scope": "openid git"},
    ).json()
    if browser:
        approve(device["verification_uri_complete"])
    else:
        approve_fast(device["verification_uri_complete"], provider.ca_path)
    response = http.post(
        provider.token_endpoint,
        data={
            "client_id": provider.client_id,
            "grant_type": DEVICE_GRANT,
            "device_code": device["device_code"],
        },
    )
    assert response.status_code == 200, response.text

    tokens: dict[str, Any] = response.json()
    return tokens


def refresh(
    http: requests.Session, provider: Provider, token: str
) -> requests.Response:
    return http.post(
        provider.token_endpoint,
        data={
            "client_id": provider.client_id,
            "grant_type": "refresh_token",
            "refresh_token": token,
        },
    )


def git(
    env: dict[str, str], *args: str, token: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run git with only an inline helper that answers with this token."""
    helper = f"!f() {{ echo username=x; echo password={token}; }}; f"
    config = ["-c", "credential.helper="]
    if token is not None:
        config += ["-c", f"credential.helper={helper}"]

    return subprocess.run(
        ["git", *config, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for_log(directory: Path, text: str, timeout: float = 30) -> str:
    """The open-browser log containing text, once the background run wrote it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in directory.glob("browser-*.log"):
            content = path.read_text(errors="replace")
            if text in content:
                return content
        time.sleep(0.1)
    logs = [p.read_text(errors="replace") for p in directory.glob("*.log")]
    raise AssertionError(f"no browser log with {text!r}: {logs}")


def test_discovery_document(http: requests.Session, provider: Provider) -> None:
    url = f"{provider.issuer}/.well-known/openid-configuration"
    document = http.get(url).json()

    assert document["issuer"] == provider.issuer
    assert document["device_authorization_endpoint"] == f"{provider.issuer}/device/auth"
    assert document["token_endpoint"] == provider.token_endpoint
    assert document["introspection_endpoint"] == provider.introspection_endpoint
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "git" in document["scopes_supported"]


def test_authorization_code_flow_through_open_browser(
    http: requests.Session,
    provider: Provider,
    helper_env: dict[str, str],
    rig_log_dir: Path,
) -> None:
    verifier, challenge = pkce_pair()
    with CallbackListener() as listener:
        query = {
            "client_id": provider.client_id,
            "response_type": "code",
            "redirect_uri": listener.redirect_uri,
            "scope": "openid git",
            "state": "state-4711",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        url = f"{provider.authorization_endpoint}?{urlencode(query)}"
        started = time.monotonic()
        opened = subprocess.run(
            [helper_env["BROWSER"], url],
            env=helper_env,
            capture_output=True,
            timeout=10,
        )
        # webbrowser waits for $BROWSER: it must return at once, say nothing.
        assert time.monotonic() - started < 2
        assert (opened.returncode, opened.stdout) == (0, b"")
        assert listener.received.wait(60), wait_for_log(rig_log_dir, "FAILED")

    assert listener.query["state"] == ["state-4711"]
    assert listener.query["iss"] == [provider.issuer]  # RFC 9207
    exchange = {
        "client_id": provider.client_id,
        "grant_type": "authorization_code",
        "code": listener.query["code"][0],
        "redirect_uri": listener.redirect_uri,
        "code_verifier": verifier,
    }
    tokens = http.post(provider.token_endpoint, data=exchange).json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["refresh_token"]
    assert provider.counts()["authorization_code"] == 1
    introspection = provider.introspect(tokens["access_token"])
    assert introspection["active"] is True
    assert introspection["client_id"] == provider.client_id
    assert introspection["sub"] == "test-user"
    replay = http.post(provider.token_endpoint, data=exchange)
    assert replay.json()["error"] == "invalid_grant"
    log = wait_for_log(rig_log_dir, "DONE")
    assert "DONE at http://127.0.0.1" in log
    # The dev pages @import web fonts; the browser must not fetch them.
    assert "blocked fonts.googleapis.com" in log


def test_device_flow_in_browser(http: requests.Session, provider: Provider) -> None:
    tokens = device_login(http, provider, browser=True)

    assert tokens["access_token"] and tokens["refresh_token"]
    assert tokens["scope"] == "openid git"
    assert provider.counts() == {
        "authorization_code": 0,
        "refresh_token": 0,
        "device_code": 1,
        "total": 1,
    }
    assert provider.introspect(tokens["access_token"])["active"] is True


def test_authorization_code_flow_without_browser(
    http: requests.Session, provider: Provider
) -> None:
    verifier, challenge = pkce_pair()
    with CallbackListener() as listener:
        query = {
            "client_id": provider.client_id,
            "response_type": "code",
            "redirect_uri": listener.redirect_uri,
            "scope": "git",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        end = approve_fast(
            f"{provider.authorization_endpoint}?{urlencode(query)}", provider.ca_path
        )
        assert listener.received.wait(5)

    assert end.startswith(listener.redirect_uri)
    exchange = {
        "client_id": provider.client_id,
        "grant_type": "authorization_code",
        "code": listener.query["code"][0],
        "redirect_uri": listener.redirect_uri,
        "code_verifier": verifier,
    }
    tokens = http.post(provider.token_endpoint, data=exchange).json()
    assert tokens["scope"] == "git"
    assert provider.introspect(tokens["access_token"])["active"] is True


def test_device_flow_pending_before_approval(
    http: requests.Session, provider: Provider
) -> None:
    device = http.post(
        provider.device_authorization_endpoint, data={"client_id": provider.client_id}
    ).json()
    poll = {
        "client_id": provider.client_id,
        "grant_type": DEVICE_GRANT,
        "device_code": device["device_code"],
    }

    answer = http.post(provider.token_endpoint, data=poll)

    assert answer.status_code == 400
    assert answer.json()["error"] == "authorization_pending"
    assert device["verification_uri_complete"].startswith(f"{provider.issuer}/device?")


def test_refresh_rotates_and_replay_kills_the_grant(
    http: requests.Session, provider: Provider
) -> None:
    tokens = device_login(http, provider)
    provider.set_access_ttl(7)

    rotated = refresh(http, provider, tokens["refresh_token"]).json()

    assert rotated["expires_in"] == 7
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["access_token"] != tokens["access_token"]
    replay = refresh(http, provider, tokens["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"
    # Reuse detection revokes the whole grant, the new tokens included.
    assert refresh(http, provider, rotated["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )
    assert provider.introspect(rotated["access_token"])["active"] is False
    assert provider.counts()["refresh_token"] == 3


def test_revoke_refresh(http: requests.Session, provider: Provider) -> None:
    tokens = device_login(http, provider)

    assert provider.revoke_refresh() >= 1

    answer = refresh(http, provider, tokens["refresh_token"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    # Only refresh tokens go: the access token still works.
    assert provider.introspect(tokens["access_token"])["active"] is True


def test_delay_and_counts(http: requests.Session, provider: Provider) -> None:
    provider.delay(300)
    started = time.monotonic()

    answer = refresh(http, provider, "not-a-refresh-token")

    assert time.monotonic() - started >= 0.3
    assert answer.json()["error"] == "invalid_grant"
    assert provider.counts() == {
        "authorization_code": 0,
        "refresh_token": 1,
        "device_code": 0,
        "total": 1,
    }
    provider.reset()
    assert provider.counts()["total"] == 0


def test_git_clone_and_push_with_token(
    http: requests.Session,
    provider: Provider,
    git_server: GitServer,
    helper_env: dict[str, str],
    tmp_path: Path,
) -> None:
    token = device_login(http, provider)["access_token"]
    work = tmp_path / "work"

    clone = git(helper_env, "clone", git_server.url, str(work), token=token)
    assert clone.returncode == 0, clone.stderr
    assert (work / "README").read_text() == "hello from the rig\n"
    (work / "change.txt").write_text("pushed by the rig test\n")
    assert git(helper_env, "add", "change.txt", cwd=work).returncode == 0
    assert git(helper_env, "commit", "-qm", "change", cwd=work).returncode == 0
    push = git(helper_env, "push", "origin", "main", token=token, cwd=work)

    assert push.returncode == 0, push.stderr
    local_head = git(helper_env, "rev-parse", "HEAD", cwd=work).stdout.strip()
    assert git_server.rev_parse("main") == local_head
    # git asks without credentials first: one 401 per command, then the token.
    assert git_server.unauthorized == 2
    assert set(git_server.stats.tokens) == {token}


def test_git_server_rejects_revoked_and_missing_tokens(
    http: requests.Session,
    provider: Provider,
    git_server: GitServer,
    helper_env: dict[str, str],
) -> None:
    token = device_login(http, provider)["access_token"]
    assert git(helper_env, "ls-remote", git_server.url, token=token).returncode == 0

    provider.revoke_access()
    rejected = git(helper_env, "ls-remote", git_server.url, token=token)

    assert rejected.returncode != 0
    assert "Authentication failed" in rejected.stderr
    anonymous = http.get(f"{git_server.url}/info/refs?service=git-upload-pack")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="oauth-helper test"'


def test_provider_under_issuer_path_and_host_name(
    rig_ca: RigCA, tmp_path: Path
) -> None:
    mounted = start_provider(
        rig_ca.ca_path,
        rig_ca.cert_path,
        rig_ca.key_path,
        tmp_path / "provider.log",
        issuer_path="/oidc",
        hostname="idp.localhost",
    )
    try:
        discovery = mounted.session.get(
            mounted.admin_url(f"{mounted.issuer}/.well-known/openid-configuration")
        ).json()
        outside = mounted.session.get(f"https://127.0.0.1:{mounted.port}/token")
        device = mounted.session.post(
            mounted.admin_url(mounted.device_authorization_endpoint),
            data={"client_id": mounted.client_id, "scope": "git"},
        ).json()
        end = approve_fast(device["verification_uri_complete"], mounted.ca_path)
    finally:
        mounted.stop()

    assert mounted.issuer == f"https://idp.localhost:{mounted.port}/oidc"
    assert discovery["issuer"] == mounted.issuer
    assert discovery["token_endpoint"] == f"{mounted.issuer}/token"
    assert discovery["device_authorization_endpoint"] == f"{mounted.issuer}/device/auth"
    assert outside.status_code == 404
    assert end.startswith(f"{mounted.issuer}/device/")


def test_helper_env_is_isolated(
    helper_env: dict[str, str], rig_ca: RigCA, tmp_path: Path
) -> None:
    rig_ca_path = rig_ca.ca_path
    assert helper_env["HOME"].startswith(str(tmp_path))
    assert helper_env["XDG_CONFIG_HOME"].startswith(str(tmp_path))
    assert helper_env["GIT_CONFIG_GLOBAL"] == str(tmp_path / "gitconfig")
    assert helper_env["REQUESTS_CA_BUNDLE"] == rig_ca_path
    assert helper_env["GIT_SSL_CAINFO"] == rig_ca_path
    assert "GIT_TERMINAL_PROMPT" not in helper_env
    assert "DISPLAY" not in helper_env
    assert Path(helper_env["BROWSER"]).is_file()


def test_browser_allows_only_loopback() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("[::1]")
    assert is_loopback("localhost")
    assert is_loopback("idp.localhost")
    assert not is_loopback("fonts.googleapis.com")
    assert not is_loopback("10.0.0.1")
