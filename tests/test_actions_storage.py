"""git's storage semantics, through the real executable and through git itself.

Each test runs ``oauth-helper store/get/erase`` as git does: a request on
stdin, the answer on stdout, every piece of state in tmp_path.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from store.helpers import HELPER, isolated_env, request, run_helper

HOST = "git.example.test"  # served by no preset and no configuration


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path)


def store(env: dict[str, str], **fields: str) -> None:
    done = run_helper("store", request(**_with_defaults(fields)), env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def erase(env: dict[str, str], **fields: str) -> None:
    done = run_helper("erase", request(**_with_defaults(fields)), env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def get(env: dict[str, str], *extra: str, **fields: str) -> dict[str, str]:
    text = request(**_with_defaults(fields)).rstrip("\n") + "\n"
    text += "".join(f"{line}\n" for line in extra) + "\n"
    done = run_helper("get", text, env)
    assert (done.returncode, done.stderr) == (0, "")
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def _with_defaults(fields: dict[str, str]) -> dict[str, str]:
    return {"protocol": "https", "host": HOST, **fields}


def test_unknown_host_with_nothing_stored_is_silent(env: dict[str, str]) -> None:
    done = run_helper("get", request(protocol="https", host="nothing.test"), env)

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_store_keeps_a_credential_for_a_host_with_nothing_stored(
    env: dict[str, str],
) -> None:
    store(env, username="alice", password="pw-a")

    assert get(env) == {"username": "alice", "password": "pw-a"}


class TestStorage:
    def test_same_protocol_host_path_and_username_only(
        self, env: dict[str, str]
    ) -> None:
        store(env, path="team/repo.git", username="alice", password="pw-a")

        wanted = {"username": "alice", "password": "pw-a"}
        assert get(env, path="team/repo.git") == wanted
        assert get(env, path="team/repo.git", username="alice") == wanted
        assert get(env, path="team/repo.git", username="bob") == {}
        assert get(env, path="team/other.git") == {}
        assert get(env, protocol="http", path="team/repo.git") == {}
        assert get(env, host="other.example.test", path="team/repo.git") == {}

    def test_store_overwrites(self, env: dict[str, str]) -> None:
        store(env, username="alice", password="old")
        store(env, username="alice", password="new")

        assert get(env, username="alice") == {"username": "alice", "password": "new"}

    def test_several_users_per_host_coexist(self, env: dict[str, str]) -> None:
        store(env, username="alice", password="pw-a")
        store(env, username="bob", password="pw-b")

        assert get(env, username="alice")["password"] == "pw-a"
        assert get(env, username="bob")["password"] == "pw-b"
        assert get(env)["username"] in ("alice", "bob")

    def test_erase_keeps_a_credential_whose_password_differs(
        self, env: dict[str, str]
    ) -> None:
        store(env, username="alice", password="pw-a")

        erase(env, username="alice", password="not-pw-a")

        assert get(env, username="alice")["password"] == "pw-a"

    def test_erase_removes_every_match(self, env: dict[str, str]) -> None:
        store(env, username="alice", password="pw-a")
        store(env, username="bob", password="pw-b")
        store(env, username="carol", password="pw-c", path="kept.git")

        erase(env, username="alice", password="pw-a")
        assert get(env, username="alice") == {}
        assert get(env, username="bob")["password"] == "pw-b"

        erase(env)
        assert get(env) == {}
        assert get(env, path="kept.git")["password"] == "pw-c"

    def test_expiry_and_refresh_token_round_trip(self, env: dict[str, str]) -> None:
        expiry = str(int(time.time()) + 3600)
        store(
            env,
            username="alice",
            password="pw-a",
            password_expiry_utc=expiry,
            oauth_refresh_token="rt-a",
        )

        assert get(env) == {
            "username": "alice",
            "password": "pw-a",
            "password_expiry_utc": expiry,
            "oauth_refresh_token": "rt-a",
        }

    def test_expired_credential_gives_its_refresh_token_alone(
        self, env: dict[str, str]
    ) -> None:
        past = str(int(time.time()) - 10)
        store(
            env,
            username="alice",
            password="pw-a",
            password_expiry_utc=past,
            oauth_refresh_token="rt-a",
        )

        assert get(env) == {"oauth_refresh_token": "rt-a"}

    def test_authtype_only_for_callers_with_the_capability(
        self, env: dict[str, str]
    ) -> None:
        store(
            env,
            **{"capability[]": "authtype"},
            username="alice",
            authtype="Bearer",
            credential="token-a",
        )

        assert get(env, "capability[]=authtype") == {
            "capability[]": "authtype",
            "authtype": "Bearer",
            "credential": "token-a",
        }
        assert get(env) == {}

    def test_authtype_not_kept_without_the_capability(
        self, env: dict[str, str]
    ) -> None:
        store(env, username="alice", password="pw-a", authtype="Bearer", credential="x")

        assert get(env, "capability[]=authtype") == {
            "username": "alice",
            "password": "pw-a",
        }

    def test_ephemeral_is_not_stored(self, env: dict[str, str]) -> None:
        store(env, username="alice", password="pw-a")
        store(env, username="bob", password="pw-b", ephemeral="1")

        assert get(env, username="bob") == {}

    def test_long_wwwauth_never_confuses_matching(self, env: dict[str, str]) -> None:
        challenge = 'Bearer realm="' + "r" * 8192 + '"'
        store(env, username="alice", password="pw-a", **{"wwwauth[]": challenge})

        found = get(env, f"wwwauth[]={challenge}", "wwwauth[]=Basic realm=x")

        assert found == {"username": "alice", "password": "pw-a"}


def test_git_credential_approve_fill_reject(env: dict[str, str]) -> None:
    stored = request(protocol="https", host=HOST, username="alice", password="pw-a")
    asked = request(protocol="https", host=HOST)

    assert git_credential("approve", stored, env).returncode == 0
    filled = git_credential("fill", asked, env)
    assert filled.returncode == 0
    assert "username=alice\npassword=pw-a\n" in filled.stdout

    assert git_credential("reject", stored, env).returncode == 0
    # Nothing left and no terminal prompt: git gives up.
    assert git_credential("fill", asked, env).returncode != 0


def git_credential(
    action: str, text: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    # The empty value resets inherited helpers; then ours, by absolute path.
    argv = ["git", "-c", "credential.helper=", "-c", f"credential.helper={HELPER}"]
    return subprocess.run(
        [*argv, "credential", action],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_debug_output_reaches_stderr_on_the_action_path(env: dict[str, str]) -> None:
    store(env, username="alice", password="pw-secret-123")
    done = run_helper(
        "get", request(protocol="https", host=HOST), {**env, "OAUTH_HELPER_DEBUG": "1"}
    )

    assert "password=pw-secret-123" in done.stdout
    assert "answering from the store" in done.stderr
    assert "pw-secret-123" not in done.stderr
