"""Databricks by preset alone: the rig's provider under /oidc on a workspace name.

The provider is served as https://dbc-rig.cloud.databricks.com:PORT/oidc with a
certificate for that name, and reached through the built-in preset only (no
git config): discovery at the documented RFC 8414 URL, the public client
``databricks-cli``, the exact redirect http://localhost:8020 (8021 when 8020 is
busy), then ``oauth-helper token`` feeding curl against a small local API.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rig.ca import RigCA
from rig.gitserver import Introspector
from rig.idp import GIT_SERVER_CLIENT, Provider, start_provider

WORKSPACE = "dbc-rig.cloud.databricks.com"
HOSTS_FILE = Path("/etc/hosts")
HOSTS_LINE = f"127.0.0.1 {WORKSPACE}  # oauth-helper tests\n"


def _resolves_to_loopback(name: str) -> bool:
    try:
        return socket.gethostbyname(name) == "127.0.0.1"
    except OSError:
        return False


@pytest.fixture(scope="session")
def workspace_name() -> Iterator[str]:
    """WORKSPACE resolving to 127.0.0.1 for the helper, for this session.

    The preset matches *.cloud.databricks.com and the helper resolves names
    with the system resolver (which knows no *.localhost here). Tests and CI
    run as root, so the session adds one loopback-only line to /etc/hosts
    and removes exactly that line afterwards.
    """
    if _resolves_to_loopback(WORKSPACE):
        yield WORKSPACE
        return
    if not os.access(HOSTS_FILE, os.W_OK):
        pytest.skip(f"{WORKSPACE} does not resolve and /etc/hosts is read-only")
    original = HOSTS_FILE.read_text()
    separator = "" if original.endswith("\n") or not original else "\n"
    # Written in place (not renamed over): containers bind-mount /etc/hosts.
    with HOSTS_FILE.open("a") as hosts:
        hosts.write(separator + HOSTS_LINE)
    try:
        yield WORKSPACE
    finally:
        text = HOSTS_FILE.read_text().replace(separator + HOSTS_LINE, "", 1)
        HOSTS_FILE.write_text(text)


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, rig_ca: RigCA, workspace_name: str
) -> Iterator[Provider]:
    """The rig's provider as a Databricks workspace's /oidc issuer."""
    directory = tmp_path_factory.mktemp("databricks")
    # 127.0.0.1 too: the rig's admin and introspection calls go there.
    cert, key = rig_ca.issue(directory, workspace_name, "127.0.0.1")
    running = start_provider(
        rig_ca.ca_path,
        cert,
        key,
        directory / "provider.log",
        issuer_path="/oidc",
        hostname=workspace_name,
    )
    yield running
    running.stop()


@pytest.fixture
def env(helper_env: dict[str, str], workspace_name: str) -> dict[str, str]:
    """helper_env, with Chromium told that the workspace name is loopback."""
    return {
        **helper_env,
        "OAUTH_RIG_HOSTS": workspace_name,
        "NO_PROXY": f"{helper_env['NO_PROXY']},{workspace_name}",
    }


def workspace_url(workspace: Provider) -> str:
    return f"https://{WORKSPACE}:{workspace.port}"


def token(env: dict[str, str], url: str) -> str:
    done = subprocess.run(
        ["oauth-helper", "token", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def redirects(log_dir: Path, runs: int = 1) -> list[str]:
    """Where each browser run ended (open-browser logs "DONE at URL").

    The helper has its code before the browser closes and logs: wait a little.
    """
    deadline = time.monotonic() + 15
    while True:
        ends = [
            line.rsplit(" ", 1)[1]
            for log in sorted(log_dir.glob("browser-*.log"))
            for line in log.read_text().splitlines()
            if " DONE at " in line
        ]
        if len(ends) >= runs or time.monotonic() > deadline:
            return ends
        time.sleep(0.1)


def stored_refresh_token(env: dict[str, str]) -> str:
    root = Path(env["XDG_STATE_HOME"]) / "oauth-helper" / "records"
    (record,) = [p for p in root.glob("*/*") if not p.name.startswith(".")]
    fields = dict(line.split("=", 1) for line in record.read_text().splitlines())
    return fields.get("oauth_refresh_token", "")


def test_explain_uses_the_preset_and_discovery(
    env: dict[str, str], workspace: Provider
) -> None:
    done = subprocess.run(
        ["oauth-helper", "explain", "--json", workspace_url(workspace)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)

    assert rows["preset"] == {"value": "databricks", "source": "preset"}
    assert rows["client_id"] == {"value": "databricks-cli", "source": "preset"}
    assert rows["issuer"]["value"] == workspace.issuer
    assert rows["token_url"] == {
        "value": workspace.token_endpoint,
        "source": "discovery",
    }
    assert rows["redirect_url"]["value"] == "http://localhost:8020"
    assert rows["scopes"]["value"] == "all-apis offline_access"


def test_browser_login_on_8020_then_curl_with_the_token(
    env: dict[str, str], workspace: Provider, rig_log_dir: Path
) -> None:
    url = workspace_url(workspace)

    access = token(env, url)

    # The browser shows the URL with a slash; the string sent is exact, or the
    # provider (which registers http://localhost:8020 verbatim) would refuse.
    assert redirects(rig_log_dir) == ["http://localhost:8020/"]
    answer = workspace.introspect(access)
    assert answer["active"] is True
    assert answer["client_id"] == "databricks-cli"
    assert "all-apis" in answer["scope"].split()
    assert stored_refresh_token(env), "offline_access brought no refresh token"
    # A shell script calls the REST API with curl; the second token comes
    # from the store (no second browser run).
    with WorkspaceAPI(workspace) as api:
        ok = bash(
            env,
            f'curl -sS --fail -H "Authorization: Bearer $(oauth-helper token {url})" '
            f"{api.url}",
        )
        refused = bash(
            env,
            "curl -sS -o /dev/null -w '%{http_code}' "
            f'-H "Authorization: Bearer {access}x" {api.url}',
        )
    assert (ok.returncode, ok.stdout) == (0, '{"user": "test-user"}\n'), ok.stderr
    assert refused.stdout == "401"
    # open-browser creates its log before it returns: one file, one run.
    assert len(list(rig_log_dir.glob("browser-*.log"))) == 1


def test_busy_8020_falls_back_to_8021(
    env: dict[str, str], workspace: Provider, rig_log_dir: Path
) -> None:
    with socket.socket() as squatter:
        # SO_REUSEADDR: the previous test's login may leave 8020 in TIME_WAIT.
        # A listening socket still keeps the helper off the port.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 8020))
        squatter.listen()

        access = token(env, workspace_url(workspace))

    assert redirects(rig_log_dir) == ["http://localhost:8021/"]
    assert workspace.introspect(access)["active"] is True


def bash(env: dict[str, str], script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script, as a user's script would call the REST API."""
    return subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=90
    )


class WorkspaceAPI:
    """A tiny REST API on 127.0.0.1 that accepts active Bearer tokens only."""

    def __init__(self, workspace: Provider) -> None:
        introspector = Introspector(
            workspace.admin_url(workspace.introspection_endpoint),
            workspace.ca_path,
            GIT_SERVER_CLIENT,
        )

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                scheme, _, value = self.headers.get("Authorization", "").partition(" ")
                answer = introspector.active(value) if scheme == "Bearer" else None
                body = json.dumps({"user": answer["sub"]} if answer else {}) + "\n"
                self.send_response(200 if answer else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.introspector = introspector
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.server.server_address[1]}/api/2.0/clusters/list"
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WorkspaceAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.introspector.close()
