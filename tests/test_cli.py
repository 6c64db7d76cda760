"""The commands for people and scripts: token, status, logout; and no leaks."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from flows.fakeserver import DEVICE_GRANT, FakeServer, Reply
from rig.client import configure, git, record_files, run_helper, stored_tokens
from rig.gitserver import GitServer
from rig.idp import DEFAULT_ACCESS_TTL, Provider

CORP = "https://git.corp.example"


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
    assert done.stderr == (
        "oauth-helper: no token for https://unknown.example/: "
        "no preset, git config or file entry serves this host\n"
    )


def serve(env: dict[str, str], url: str = CORP, **values: str) -> None:
    """Make the helper serve *url* with these oauth* settings (git config)."""
    for key, value in values.items():
        git(env, "config", "--global", f"credential.{url}.{key}", value)


def test_token_for_a_host_without_client_id_says_how_to_set_one(
    helper_env: dict[str, str],
) -> None:
    quiet = {**helper_env, "GIT_TERMINAL_PROMPT": "0"}
    serve(quiet, oauthTokenURL="https://auth.corp.example/token")

    done = run_helper(quiet, "token", f"{CORP}/repo.git")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"oauth-helper: no token for {CORP}/repo.git: git.corp.example needs an "
        "OAuth client ID: register an OAuth application with the host (redirect "
        "URI http://127.0.0.1/), then run: git config --global "
        f"credential.{CORP}.oauthClientId <ID>\n"
    )


@pytest.mark.parametrize("switch", ["GIT_TERMINAL_PROMPT=0", "credential.interactive"])
def test_token_with_sign_in_off_says_so(
    helper_env: dict[str, str], switch: str
) -> None:
    env = dict(helper_env)
    if switch == "credential.interactive":
        git(env, "config", "--global", "credential.interactive", "never")
    else:
        env["GIT_TERMINAL_PROMPT"] = "0"
    serve(env, oauthClientId="cid", oauthTokenURL="https://auth.corp.example/token")

    done = run_helper(env, "token", CORP)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"oauth-helper: no token for {CORP}: no fresh token is stored, and sign-in "
        "is off (GIT_TERMINAL_PROMPT=0 or credential.interactive=false)\n"
    )


def test_token_with_nobody_to_sign_in_says_so(helper_env: dict[str, str]) -> None:
    # No browser, and a new session has no terminal (/dev/tty fails): as in
    # cron or a CI job.
    env = {k: v for k, v in helper_env.items() if k != "BROWSER"}
    serve(env, oauthClientId="cid", oauthTokenURL="https://auth.corp.example/token")

    done = subprocess.run(
        ["oauth-helper", "token", CORP],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"oauth-helper: no token for {CORP}: no fresh token is stored, and nobody "
        "is there to sign in (no browser, no terminal)\n"
    )


def test_token_after_a_failed_sign_in_gives_the_sign_in_error(
    helper_env: dict[str, str],
) -> None:
    # helper_env's BROWSER means someone is there; over SSH nobody would be.
    env = {
        k: v for k, v in helper_env.items() if k not in ("SSH_CONNECTION", "SSH_TTY")
    }
    with FakeServer() as fake:
        fake.route("/device", Reply(200, DEVICE_GRANT))
        fake.route("/token", Reply(400, {"error": "access_denied"}))
        serve(
            env,
            fake.origin,
            oauthClientId="cli",
            oauthDeviceAuthURL=fake.url("/device"),
            oauthTokenURL=fake.url("/token"),
            oauthFlow="device",
        )

        done = run_helper(env, "token", f"{fake.origin}/repo")
        polls = fake.seen("/token")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines()[-1] == "oauth-helper: sign-in was denied"
    assert "no token for" not in done.stderr
    assert [p.form["device_code"] for p in polls] == ["device-code-value"]


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
