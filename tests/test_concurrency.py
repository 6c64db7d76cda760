"""Many git processes at once, dead lock holders, and a provider that is down.

Rotating refresh tokens make every mistake visible: the rig's provider
revokes the whole grant when a refresh token is presented twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rig.client import configure, git, record_files, run_helper, stored_tokens
from rig.gitserver import GitServer
from rig.idp import Provider

TTL = 4  # access-token lifetime; with the 1 s margin it is stale after 3 s
CALLERS = 16


@pytest.fixture
def clones(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
) -> list[Path]:
    """One clone made through a browser login, copied 16 times."""
    provider.set_access_ttl(TTL)
    configure(helper_env, git_server, provider)
    first = tmp_path / "clone-0"
    git(helper_env, "clone", "-q", git_server.url, str(first))
    copies = [tmp_path / f"clone-{i}" for i in range(1, CALLERS)]
    for copy in copies:
        shutil.copytree(first, copy)
    return [first, *copies]


def fetch_all(env: dict[str, str], clones: list[Path]) -> list[str]:
    """Start every fetch at once; return the stderr of those that failed."""
    procs = [
        subprocess.Popen(
            ["git", "fetch", "-q"],
            cwd=c,
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in clones
    ]
    failures = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failures.append(err)
    return failures


def test_parallel_fetches_at_expiry_refresh_once(
    clones: list[Path], helper_env: dict[str, str], provider: Provider
) -> None:
    _, old_refresh = stored_tokens(helper_env)
    time.sleep(TTL + 0.5)

    assert fetch_all(helper_env, clones) == []
    counts = provider.counts()
    assert (counts["refresh_token"], counts["authorization_code"]) == (1, 1)
    assert stored_tokens(helper_env)[1] not in ("", old_refresh)


@pytest.fixture
def dead_lock_holder(helper_env: dict[str, str]) -> Iterator[Path]:
    """The record's lock file, taken by a process that was then SIGKILLed."""
    (record,) = record_files(helper_env)
    code = (
        "import sys, time\n"
        "from helper.store import Store\n"
        "from helper.store.records import parse_record\n"
        "record = parse_record(open(sys.argv[1]).read())\n"
        "Store().lock(record).__enter__()\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(record)],
        env=helper_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    with holder.stdout:
        assert holder.stdout.readline() == "locked\n"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = Path(helper_env["XDG_STATE_HOME"]) / "oauth-helper" / "locks"
    yield lock / f"{record.name}.lock"


def test_lock_left_by_killed_process_blocks_nobody(
    clones: list[Path],
    helper_env: dict[str, str],
    provider: Provider,
    dead_lock_holder: Path,
) -> None:
    assert dead_lock_holder.exists()
    time.sleep(TTL + 0.5)

    assert fetch_all(helper_env, clones) == []
    assert provider.counts()["refresh_token"] == 1


class _Unavailable(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def unavailable_url() -> Iterator[str]:
    """A token endpoint on loopback that always answers 503."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token"
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/token"


def test_provider_down_keeps_refresh_token_then_refreshes(
    clones: list[Path],
    helper_env: dict[str, str],
    provider: Provider,
    git_server: GitServer,
    unavailable_url: str,
) -> None:
    base = git_server.url.rsplit("/", 1)[0]
    request = f"protocol=http\nhost={base.split('/')[2]}\n\n"
    _, refresh = stored_tokens(helper_env)
    time.sleep(TTL + 0.5)

    for down in (closed_port_url(), unavailable_url):
        git(helper_env, "config", "--global", f"credential.{base}.oauthTokenURL", down)
        done = run_helper(helper_env, "get", stdin=request)
        assert (done.returncode, done.stdout) == (1, "")
        assert len(done.stderr.splitlines()) == 1
        assert stored_tokens(helper_env)[1] == refresh

    git(helper_env, "config", "--global", "--unset", f"credential.{base}.oauthTokenURL")
    done = run_helper(helper_env, "get", stdin=request)
    assert done.returncode == 0
    assert "password=" in done.stdout
    assert provider.counts()["refresh_token"] == 1
