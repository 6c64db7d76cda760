"""An answer stdout cannot take: closed, or its reader gone. One line, no traceback.

Also the bytes git gave come back unchanged through ``token``, whatever
encoding Python would pick for stdout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from flows.fakeserver import FakeServer
from store.helpers import HELPER, isolated_env, request, run_helper

HOST = "out.example.test"
GIT_HELPER = HELPER.with_name("git-credential-oauth-helper")
ASK = request(protocol="https", host=HOST)


def closed(
    redirect: str, program: Path, *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run *program* with *args* and the shell redirection *redirect* (>&-)."""
    return subprocess.run(
        ["sh", "-c", f'exec "$0" "$@" {redirect}', str(program), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def reader_gone(
    argv: list[str], env: dict[str, str], stdin: str = ""
) -> tuple[int, str]:
    """Exit status and stderr of *argv* whose stdout reader left before it wrote."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    process.stdout.close()
    process.stdout = None
    _, err = process.communicate(stdin.encode(), timeout=30)
    return process.returncode, err.decode()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = isolated_env(tmp_path)
    stored = request(protocol="https", host=HOST, username="me", password="pw-1")
    assert run_helper("store", stored, env).returncode == 0
    return env


@pytest.mark.parametrize("program", [HELPER, GIT_HELPER], ids=lambda p: p.name)
def test_a_closed_stdout_is_one_line_and_loses_nothing(
    env: dict[str, str], program: Path
) -> None:
    done = closed(">&-", program, "get", env=env, stdin=ASK)

    assert done.returncode == 1
    assert done.stderr == "oauth-helper: cannot write the answer: stdout is closed\n"
    assert "password=pw-1" in run_helper("get", ASK, env).stdout


def test_a_reader_that_went_away_is_one_line(env: dict[str, str]) -> None:
    assert reader_gone([str(HELPER), "get"], env, ASK) == (
        1,
        "oauth-helper: cannot write the answer: Broken pipe\n",
    )


def test_token_with_a_closed_stdout_is_one_line(env: dict[str, str]) -> None:
    done = closed(">&-", HELPER, "token", f"https://{HOST}/", env=env)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "oauth-helper: cannot write the token: stdout is closed\n"


def test_token_gives_back_the_bytes_git_stored(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    stored = b"protocol=https\nhost=%s\nusername=me\npassword=p\xff\xfeq\n\n"
    put = subprocess.run(
        [str(HELPER), "store"], input=stored % HOST.encode(), env=env, check=True
    )
    assert put.returncode == 0

    done = subprocess.run(
        [str(HELPER), "token", f"https://{HOST}/"],
        capture_output=True,
        env={**env, "PYTHONIOENCODING": "utf-8:strict"},
        timeout=30,
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, b"p\xff\xfeq\n", b"")


def test_a_closed_stdout_starts_no_sign_in(tmp_path: Path) -> None:
    # Its token could not be handed out: get is a miss (silent, exit 0),
    # token says so before signing in.
    env = {**isolated_env(tmp_path), "BROWSER": "/bin/true"}
    env.pop("GIT_TERMINAL_PROMPT")
    with FakeServer() as fake:
        for key, value in (
            ("oauthClientId", "cli"),
            ("oauthAuthURL", fake.url("/authorize")),
            ("oauthTokenURL", fake.url("/token")),
        ):
            url = f"credential.{fake.origin}.{key}"
            subprocess.run(
                ["git", "config", "--global", url, value], env=env, check=True
            )
        host = fake.origin.removeprefix("http://")
        asked = closed(
            ">&-", GIT_HELPER, "get", env=env, stdin=f"protocol=http\nhost={host}\n\n"
        )
        token = closed(">&-", HELPER, "token", fake.origin, env=env)
        requests = list(fake.requests)

    assert (asked.returncode, asked.stderr) == (0, "")
    assert (token.returncode, token.stderr) == (
        1,
        "oauth-helper: cannot write the token: stdout is closed\n",
    )
    assert requests == []


def test_a_closed_stdin_is_an_empty_request(env: dict[str, str]) -> None:
    done = closed("<&-", GIT_HELPER, "get", env=env)

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_nothing_to_answer_needs_no_stdout(env: dict[str, str]) -> None:
    for request_text in ("protocol=https\nhost=other.test\n\n", ""):
        done = closed(">&-", GIT_HELPER, "get", env=env, stdin=request_text)

        assert (done.returncode, done.stderr) == (0, "")


COMMANDS = [["status"], ["explain", f"https://{HOST}/"], ["--help"], ["--version"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_command_with_a_closed_stdout_is_one_line(
    env: dict[str, str], args: list[str]
) -> None:
    done = closed(">&-", HELPER, *args, env=env)

    assert done.returncode == 1
    assert done.stderr == "oauth-helper: cannot write the output: stdout is closed\n"


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_command_whose_reader_went_away_is_one_line(
    env: dict[str, str], args: list[str]
) -> None:
    assert reader_gone([str(HELPER), *args], env) == (
        1,
        "oauth-helper: cannot write the output: Broken pipe\n",
    )


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_command_writing_to_a_full_disk_is_one_line(
    env: dict[str, str], args: list[str]
) -> None:
    done = closed(">/dev/full", HELPER, *args, env=env)

    assert done.returncode == 1
    assert done.stderr == (
        "oauth-helper: cannot write the output: No space left on device\n"
    )


def test_an_answer_to_a_full_disk_is_one_line(env: dict[str, str]) -> None:
    done = closed(">/dev/full", GIT_HELPER, "get", env=env, stdin=ASK)

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "No space left on device" in done.stderr


def test_logout_needs_no_stdout(env: dict[str, str]) -> None:
    done = closed(">&-", HELPER, "logout", f"https://{HOST}/", env=env)

    assert (done.returncode, done.stderr) == (0, "removed 1 stored credential(s)\n")
