"""The commands for people and scripts: token, status, logout; and no leaks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from rig.client import configure, git, record_files, run_helper, stored_tokens
from rig.gitserver import GitServer
from rig.idp import DEFAULT_ACCESS_TTL, Provider


@pytest.fixture
def origin(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
) -> str:
    """A git server origin the helper serves, after one clone (one login)."""
    base = configure(helper_env, git_server, provider)
    git(helper_env, "clone", "-q", git_server.url, str(tmp_path / "clone"))
    return base


def test_token_prints_the_cached_access_token_only(
    origin: str, helper_env: dict[str, str], provider: Provider
) -> None:
    done = run_helper(helper_env, "token", origin)

    assert done.returncode == 0
    assert done.stdout == stored_tokens(helper_env)[0] + "\n"
    assert provider.counts()["total"] == 1


def test_token_for_unserved_host_is_one_line_error(helper_env: dict[str, str]) -> None:
    done = run_helper(helper_env, "token", "https://unknown.example/")

    assert (done.returncode, done.stdout) == (1, "")
    assert len(done.stderr.splitlines()) == 1
    assert "unknown.example" in done.stderr


def test_token_rejects_a_non_url_with_usage_error(helper_env: dict[str, str]) -> None:
    done = run_helper(helper_env, "token", "not a url")

    assert (done.returncode, done.stdout) == (2, "")


def test_status_lists_entries_without_secrets(
    origin: str, helper_env: dict[str, str]
) -> None:
    access, refresh = stored_tokens(helper_env)
    (record,) = record_files(helper_env)
    fields = dict(line.split("=", 1) for line in record.read_text().splitlines())
    expiry = int(fields["password_expiry_utc"])
    text = run_helper(helper_env, "status").stdout
    rows = json.loads(run_helper(helper_env, "status", "--json").stdout)

    assert access not in text and refresh not in text
    assert [(r["host"], r["client_id"], r["store"]) for r in rows] == [
        (origin, "helper-test", "file")
    ]
    assert rows[0]["refresh_token"] is True
    # The rig's access tokens live an hour from the login that saved them.
    assert abs(expiry - (int(fields["updated"]) + DEFAULT_ACCESS_TTL)) <= 5
    shown = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
    assert rows[0]["expires"] == shown
    assert f" expires={shown} " in text


def test_logout_removes_entries_for_the_host(
    origin: str, helper_env: dict[str, str], provider: Provider
) -> None:
    other = run_helper(helper_env, "logout", "https://elsewhere.example/")
    assert json.loads(run_helper(helper_env, "status", "--json").stdout) != []

    done = run_helper(helper_env, "logout", origin)
    quiet = {**helper_env, "GIT_TERMINAL_PROMPT": "0"}
    host = origin.split("/")[2]
    after = run_helper(quiet, "get", stdin=f"protocol=http\nhost={host}\n\n")

    assert (other.returncode, done.returncode) == (0, 0)
    assert json.loads(run_helper(helper_env, "status", "--json").stdout) == []
    assert after.stdout == ""


def test_no_secret_reaches_stderr_even_in_debug(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
) -> None:
    env = {**helper_env, "OAUTH_HELPER_DEBUG": "1"}
    provider.set_access_ttl(3)
    configure(env, git_server, provider)
    clone = tmp_path / "clone"
    first = _stderr_of(env, "clone", git_server.url, str(clone))
    first_tokens = stored_tokens(env)
    time.sleep(3.5)
    second = _stderr_of(env, "-C", str(clone), "fetch")
    second_tokens = stored_tokens(env)

    assert "oauth-helper:" in first  # debug output was on
    assert provider.counts()["refresh_token"] == 1
    for secret in (*first_tokens, *second_tokens):
        assert len(secret) > 10
        assert secret not in first + second


def _stderr_of(env: dict[str, str], *args: str) -> str:
    import subprocess

    done = subprocess.run(
        ["git", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr
