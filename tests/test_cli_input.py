"""The commands given odd input: usage errors, exact matches, no traceback ever.

Records are put in place with ``store``, as a storage helper is given them, so
no provider is needed here; a sign-in that is refused runs against a local fake
device endpoint.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flows.fakeserver import DEVICE_GRANT, FakeServer, Reply
from rig.client import git, run_helper

from helper import cli
from helper.store import Record, Store

PASSWORD = "stored-secret-value-123"
GIT_HELPER = str(Path(sys.executable).parent / "git-credential-oauth-helper")


def store(
    env: dict[str, str], host: str, protocol: str = "https", **extra: str
) -> None:
    lines = [f"protocol={protocol}", f"host={host}", "username=me"]
    lines += [f"password={PASSWORD}-{protocol}-{host}"]
    lines += [f"{key}={value}" for key, value in extra.items()]
    done = run_helper(env, "store", stdin="\n".join(lines) + "\n\n")
    assert done.returncode == 0, done.stderr


def helper_bytes(env: dict[str, str], action: str, request: bytes) -> bytes:
    """Run *action* with *request* as raw bytes (not UTF-8, as git may send)."""
    done = subprocess.run(
        [sys.executable, "-m", "helper", action],
        input=request,
        env=env,
        capture_output=True,
        check=True,
    )
    return done.stdout


def hosts(env: dict[str, str]) -> list[str]:
    rows = json.loads(run_helper(env, "status", "--json").stdout)
    return sorted(str(row["host"]) for row in rows)


def test_logout_with_an_empty_url_is_a_usage_error_and_removes_nothing(
    helper_env: dict[str, str],
) -> None:
    store(helper_env, "a.example")

    done = run_helper(helper_env, "logout", "")

    assert (done.returncode, done.stdout) == (2, "")
    assert hosts(helper_env) == ["https://a.example"]


def test_logout_matches_protocol_and_host_exactly(helper_env: dict[str, str]) -> None:
    for protocol, host in [
        ("https", "a.example"),
        ("http", "a.example"),
        ("https", "a.example:8443"),
        ("https", "b.a.example"),
    ]:
        store(helper_env, host, protocol)

    done = run_helper(helper_env, "logout", "https://A.example/some/repo.git")

    assert done.returncode == 0, done.stderr
    assert "removed 1 " in done.stderr
    assert hosts(helper_env) == [
        "http://a.example",
        "https://a.example:8443",
        "https://b.a.example",
    ]


def test_logout_of_an_ipv6_origin_keeps_its_brackets(
    helper_env: dict[str, str],
) -> None:
    store(helper_env, "[::1]:8443")
    store(helper_env, "[::1]")

    done = run_helper(helper_env, "logout", "https://[::1]:8443/x")

    assert done.returncode == 0, done.stderr
    assert hosts(helper_env) == ["https://[::1]"]


def test_logout_for_a_username_leaves_other_users(helper_env: dict[str, str]) -> None:
    store(helper_env, "a.example")
    other = "protocol=https\nhost=a.example\nusername=you\npassword=x\n\n"
    assert run_helper(helper_env, "store", stdin=other).returncode == 0

    done = run_helper(helper_env, "logout", "https://you@a.example")

    assert done.returncode == 0, done.stderr
    rows = json.loads(run_helper(helper_env, "status", "--json").stdout)
    assert [row["username"] for row in rows] == ["me"]


@pytest.mark.parametrize("command", ["token", "explain", "logout"])
@pytest.mark.parametrize(
    "url",
    [
        "https://host.example:99999/",
        "https://host.example:port/",
        "https://user:hunter2@host.example:bad/",
        "https://[::1/",
        "ftp://host.example/",
    ],
)
def test_a_bad_url_is_a_one_line_usage_error_that_never_echoes_it(
    helper_env: dict[str, str], command: str, url: str
) -> None:
    store(helper_env, "host.example")

    done = run_helper(helper_env, command, url)

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "oauth-helper: Invalid value for URL: expected an http(s) URL such as "
        f"https://host/path (see 'oauth-helper {command} --help')\n"
    )
    assert hosts(helper_env) == ["https://host.example"]


@pytest.mark.parametrize("command", ["token", "explain", "logout"])
@pytest.mark.parametrize("control", ["\n", "\r", "\0", "\t", "\x1b", "\x7f", "\x85"])
def test_a_url_with_a_control_character_is_a_one_line_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    control: str,
) -> None:
    # In-process: argv cannot carry a NUL. urlsplit alone would drop the
    # tab, CR or LF and act on host.example.
    monkeypatch.setenv("OAUTH_HELPER_HOME", str(tmp_path))
    monkeypatch.setenv("OAUTH_HELPER_STORE", "file")
    st = Store(root=str(tmp_path), kind="file")
    st.save(Record(protocol="https", host="host.example", password=PASSWORD))

    code = cli.run([command, f"https://host.exa{control}mple/"])
    done = capsys.readouterr()

    assert (code, done.out) == (2, "")
    assert done.err == (
        "oauth-helper: Invalid value for URL: the URL contains a control "
        "character (a line break, tab, NUL, ...) "
        f"(see 'oauth-helper {command} --help')\n"
    )
    assert [r.host for r in st.all_records()] == ["host.example"]


@pytest.mark.parametrize("command", ["token", "explain", "logout"])
@pytest.mark.parametrize("host", ["nothere.example", "git.corp.example"])
def test_a_url_is_never_repeated_with_its_user_info_query_or_fragment(
    helper_env: dict[str, str], command: str, host: str
) -> None:
    # git.corp.example is served (with nobody to sign in), the other is not.
    env = {**helper_env, "GIT_TERMINAL_PROMPT": "0"}
    served = "credential.https://git.corp.example"
    git(env, "config", "--global", f"{served}.oauthClientId", "cid")
    git(env, "config", "--global", f"{served}.oauthTokenURL", "https://id.example/t")
    url = f"https://alice:hunter2@{host}/x?tok=SECRETQ#SECRETF"

    done = run_helper(env, command, url)

    assert "Traceback" not in done.stderr
    for secret in ("hunter2", "SECRETQ", "SECRETF"):
        assert secret not in done.stdout + done.stderr
    assert "alice" not in done.stderr
    if command == "token":
        assert done.returncode == 1
        assert done.stderr.startswith(f"oauth-helper: no token for https://{host}/x: ")
        assert done.stderr.count("\n") == 1
    else:
        assert done.returncode == 0, done.stderr


def test_status_shows_expiry_in_utc(helper_env: dict[str, str]) -> None:
    store(helper_env, "a.example", password_expiry_utc="2000000000")
    store(helper_env, "b.example")

    rows = json.loads(run_helper(helper_env, "status", "--json").stdout)
    text = run_helper(helper_env, "status").stdout

    assert [row["expires"] for row in rows] == ["2033-05-18T03:33:20Z", None]
    assert "expires=2033-05-18T03:33:20Z" in text
    assert PASSWORD not in text


def test_status_survives_an_expiry_beyond_any_calendar(
    helper_env: dict[str, str],
) -> None:
    huge = "9" * 30
    store(helper_env, "a.example", password_expiry_utc=huge)

    done = run_helper(helper_env, "status", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["expires"] == "invalid"
    assert " expires=invalid " in run_helper(helper_env, "status").stdout


def test_status_shows_a_byte_that_is_not_utf8_as_that_byte(
    helper_env: dict[str, str],
) -> None:
    helper_bytes(
        helper_env,
        "store",
        b"protocol=https\nhost=b.example\nusername=me\xff\npassword=pw\n\n",
    )

    text = run_helper(helper_env, "status")

    assert text.stdout == (
        "host=https://b.example username=me\\xff access_token=True "
        "refresh_token=False store=file "
        "origin=store\n"
    )


def test_status_escapes_control_characters_of_stored_values(
    helper_env: dict[str, str],
) -> None:
    # A username git was given, or a record file someone edited: ESC [2J
    # would clear the terminal, BEL ring it.
    root = Path(helper_env["XDG_STATE_HOME"]) / "oauth-helper"
    name = "me\x1b[2J\x07\x9b"
    Store(root=str(root), kind="file").save(
        Record(
            protocol="https",
            host="a.example",
            username=name,
            password=PASSWORD,
            password_expiry_utc="99999999999999999999999",
        )
    )

    text = run_helper(helper_env, "status")
    as_json = run_helper(helper_env, "status", "--json")

    assert (text.returncode, as_json.returncode) == (0, 0)
    assert text.stdout == (
        "host=https://a.example username=me\\x1b[2J\\x07\\x9b expires=invalid "
        "access_token=True refresh_token=False store=file\n"
    )
    assert "\x1b" not in as_json.stdout and "\x07" not in as_json.stdout
    (row,) = json.loads(as_json.stdout)
    assert (row["username"], row["expires"]) == (name, "invalid")


def test_an_unforeseen_error_is_one_line_without_its_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing in the store raises this on its own; the point is what run()
    # makes of an exception type it was never told about.
    def broken(self: Store) -> None:
        raise RuntimeError(f"something with {PASSWORD} in it")

    monkeypatch.setattr(Store, "all_records", broken)
    monkeypatch.delenv("OAUTH_HELPER_DEBUG", raising=False)
    monkeypatch.setenv("OAUTH_HELPER_HOME", str(tmp_path))

    code = cli.run(["status"])
    quiet = capsys.readouterr()
    debug_code = cli.run(["--debug", "status"])
    debug = capsys.readouterr()

    assert (code, quiet.out) == (1, "")
    assert quiet.err == (
        "oauth-helper: internal error (RuntimeError); run with --debug for details\n"
    )
    assert debug_code == 1
    assert "Traceback" in debug.err


def run_as_git(
    env: dict[str, str], action: str, request: str
) -> subprocess.CompletedProcess[str]:
    """Run the executable git runs, with the request on a pipe as git sends it."""
    return subprocess.run(
        [GIT_HELPER, action],
        input=request,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unknown_action_is_ignored_silently(helper_env: dict[str, str]) -> None:
    # git-credential(1): a helper ignores actions it does not know.
    request = "protocol=https\nhost=github.com\nusername=me\npassword=pw-123\n\n"

    done = run_as_git(helper_env, "frobnicate", request)

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert hosts(helper_env) == []


@pytest.fixture
def device_host(
    helper_env: dict[str, str],
) -> Iterator[tuple[dict[str, str], FakeServer, str]]:
    """An environment, a fake device-flow server it signs in with, its host.

    helper_env's BROWSER says someone is there to sign in; over SSH it would
    not, and the helper would not start a sign-in at all.
    """
    env = {
        k: v for k, v in helper_env.items() if k not in ("SSH_CONNECTION", "SSH_TTY")
    }
    with FakeServer() as fake:
        fake.route("/device", Reply(200, DEVICE_GRANT))
        for key, value in {
            "oauthClientId": "cli",
            "oauthDeviceAuthURL": fake.url("/device"),
            "oauthTokenURL": fake.url("/token"),
            "oauthFlow": "device",
        }.items():
            git(env, "config", "--global", f"credential.{fake.origin}.{key}", value)
        yield env, fake, fake.origin.removeprefix("http://")


def test_a_denied_sign_in_answers_quit(
    helper_env: dict[str, str], device_host: tuple[dict[str, str], FakeServer, str]
) -> None:
    env, fake, host = device_host
    fake.route("/token", Reply(400, {"error": "access_denied"}))

    done = run_as_git(env, "get", f"protocol=http\nhost={host}\n\n")
    polls = fake.seen("/token")

    denied = [line for line in done.stderr.splitlines() if "denied" in line]
    assert (done.returncode, done.stdout) == (1, "quit=1\n")
    assert denied == ["oauth-helper: sign-in was denied"]
    assert [p.form["device_code"] for p in polls] == ["device-code-value"]
    assert "Traceback" not in done.stderr
    assert "device-code-value" not in done.stderr
    assert hosts(helper_env) == []


def test_a_username_with_a_line_break_is_refused_before_any_sign_in(
    device_host: tuple[dict[str, str], FakeServer, str],
) -> None:
    env, fake, host = device_host

    asked = run_as_git(env, "get", f"protocol=http\nhost={host}\nusername=a\rb\n\n")
    token = run_helper(env, "token", f"http://bob%0a@{host}/")
    requests = list(fake.requests)

    refusal = "oauth-helper: the request's username holds CR, LF or NUL\n"
    assert (asked.returncode, asked.stdout, asked.stderr) == (1, "", refusal)
    assert (token.returncode, token.stdout, token.stderr) == (1, "", refusal)
    assert requests == []


@pytest.mark.parametrize(
    ("attributes", "refusal"),
    [
        ("host={host}\npath=repo\rx", "the request's path holds CR, LF or NUL"),
        ("host={host}\nclient_id=c\rx", "the request's client_id holds CR, LF or NUL"),
        ("host={host}\nscope=a\rb", "the request's scope holds CR, LF or NUL"),
        # As git's check_url_component refuses them.
        ("url=http://{host}/a%0Ab", "url holds CR, LF or NUL in its path"),
        ("url=http://{host}/a%00b", "url holds CR, LF or NUL in its path"),
        ("url=http://a%0Db@{host}/", "url holds CR, LF or NUL in its user"),
    ],
)
def test_a_key_field_with_a_line_break_is_refused_before_any_sign_in(
    device_host: tuple[dict[str, str], FakeServer, str], attributes: str, refusal: str
) -> None:
    env, fake, host = device_host
    request = f"protocol=http\n{attributes.format(host=host)}\n\n"

    asked = run_as_git(env, "get", request)

    assert (asked.returncode, asked.stdout) == (1, "")
    assert asked.stderr == f"oauth-helper: {refusal}\n"
    assert fake.requests == []


@pytest.mark.parametrize("url", ["https://a.example/", None])
def test_logout_also_deletes_records_set_aside_as_damaged(
    helper_env: dict[str, str], url: str | None
) -> None:
    store(helper_env, "a.example")
    store(helper_env, "b.example")
    state = Path(helper_env["XDG_STATE_HOME"], "oauth-helper", "records")
    for path in state.glob("*/*"):
        path.write_text(path.read_text() + "damage\n")
    assert hosts(helper_env) == []  # both read as damaged, and set aside
    assert len(list(state.glob("*/.corrupt-*"))) == 2

    done = run_helper(helper_env, "logout", *([url] if url else []))

    assert done.returncode == 0, done.stderr
    assert done.stderr == f"removed {1 if url else 2} stored credential(s)\n"
    left = [path.read_text() for path in state.glob("*/.corrupt-*")]
    assert ["host=b.example" in text for text in left] == ([True] if url else [])


def test_a_url_user_name_that_is_not_utf8_is_decoded_to_gits_bytes(
    helper_env: dict[str, str],
) -> None:
    stored = b"protocol=https\nhost=b.example\nusername=b\xffob\npassword=x\n\n"
    helper_bytes(helper_env, "store", stored)
    got = helper_bytes(helper_env, "get", b"url=https://b%FFob@b.example/\n\n")
    assert got == b"username=b\xffob\npassword=x\n"

    done = run_helper(helper_env, "logout", "https://b%FFob@b.example/")

    assert "removed 1 " in done.stderr
    assert hosts(helper_env) == []


def test_a_url_user_name_is_percent_decoded_as_git_does(
    helper_env: dict[str, str],
) -> None:
    store(helper_env, "a.example")
    other = "protocol=https\nhost=a.example\nusername=alice@corp\npassword=x\n\n"
    assert run_helper(helper_env, "store", stdin=other).returncode == 0

    done = run_helper(helper_env, "logout", "https://alice%40corp@a.example")

    assert "removed 1 " in done.stderr
    rows = json.loads(run_helper(helper_env, "status", "--json").stdout)
    assert [row["username"] for row in rows] == ["me"]


def test_token_for_a_plain_http_host_says_why(helper_env: dict[str, str]) -> None:
    for key, value in (("oauthClientId", "c"), ("oauthIssuer", "https://id.example")):
        git(
            helper_env,
            "config",
            "--global",
            f"credential.http://plain.example.{key}",
            value,
        )

    done = run_helper(helper_env, "token", "http://plain.example/repo.git")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines()[-1] == (
        "oauth-helper: no token for http://plain.example/repo.git: a token would "
        "travel unencrypted over plain http; use the https URL"
    )


def test_a_credential_without_host_or_path_is_neither_stored_nor_answered(
    helper_env: dict[str, str],
) -> None:
    request = f"protocol=https\nusername=me\npassword={PASSWORD}\n\n"

    stored = run_helper(helper_env, "store", stdin=request)
    got = run_helper(helper_env, "get", stdin="protocol=https\n\n")

    assert (stored.returncode, stored.stdout, stored.stderr) == (0, "", "")
    assert (got.returncode, got.stdout, got.stderr) == (0, "", "")
    assert hosts(helper_env) == []


def test_a_certificate_passphrase_is_kept_by_its_path(
    helper_env: dict[str, str],
) -> None:
    # git asks for a client certificate's passphrase as protocol=cert with
    # the file's path and no host.
    request = f"protocol=cert\npath=/home/me/client.p12\npassword={PASSWORD}\n\n"
    run_helper(helper_env, "store", stdin=request)

    same = run_helper(
        helper_env, "get", stdin="protocol=cert\npath=/home/me/client.p12\n\n"
    )
    other = run_helper(
        helper_env, "get", stdin="protocol=cert\npath=/home/me/other.p12\n\n"
    )

    assert f"password={PASSWORD}\n" in same.stdout
    assert other.stdout == ""


def test_token_for_a_host_without_client_id_says_how_in_one_line(
    helper_env: dict[str, str],
) -> None:
    done = run_helper(helper_env, "token", "https://github.com/")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(
        "oauth-helper: no token for https://github.com/: GitHub needs an OAuth "
        "client ID: register an OAuth application at "
        "https://github.com/settings/applications/new"
    )
    assert "credential.https://github.com.oauthClientId <ID>" in done.stderr


def test_token_names_the_path_only_where_git_would(
    helper_env: dict[str, str],
) -> None:
    # As git clone does with credential.useHttpPath: one record per repository.
    store(helper_env, "a.example", path="team/repo.git")
    store(helper_env, "b.example")
    per_path = {
        **helper_env,
        "GIT_CONFIG_PARAMETERS": "'credential.usehttppath'='true'",
    }

    repo = run_helper(per_path, "token", "https://a.example/team/repo.git")
    other = run_helper(per_path, "token", "https://a.example/team/other.git")
    host_wide = run_helper(helper_env, "token", "https://b.example/team/repo.git")

    assert (repo.returncode, repo.stdout) == (0, f"{PASSWORD}-https-a.example\n")
    assert (other.returncode, other.stdout) == (1, "")
    assert (host_wide.returncode, host_wide.stdout) == (
        0,
        f"{PASSWORD}-https-b.example\n",
    )


def test_help_names_the_program_it_was_run_as(helper_env: dict[str, str]) -> None:
    done = subprocess.run(
        [GIT_HELPER, "--help"], env=helper_env, capture_output=True, text=True
    )

    assert done.returncode == 0
    assert done.stdout.startswith("Usage: git-credential-oauth-helper [OPTIONS]")


def test_status_tells_a_signed_out_record_from_one_without_expiry(
    helper_env: dict[str, str],
) -> None:
    # What a refused refresh leaves: the key, no token of any kind.
    root = Path(helper_env["XDG_STATE_HOME"]) / "oauth-helper"
    Store(root=str(root), kind="file").save(
        Record(protocol="https", host="c.example", username="me", origin="login")
    )

    (row,) = json.loads(run_helper(helper_env, "status", "--json").stdout)

    assert (row["expires"], row["access_token"], row["refresh_token"]) == (
        None,
        False,
        False,
    )


def test_token_reports_a_settings_file_it_cannot_read(
    helper_env: dict[str, str],
) -> None:
    folder = Path(helper_env["XDG_CONFIG_HOME"], "oauth-helper")
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text('[hosts."other.example"]\nissuer\n')

    done = run_helper(helper_env, "token", "https://nothing.example/r")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"oauth-helper: cannot read {folder}/config.toml:")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_sign_in_ended_by_a_signal_leaves_no_mark(
    device_host: tuple[dict[str, str], FakeServer, str], signum: int
) -> None:
    env, fake, host = device_host
    fake.route("/token", Reply(400, {"error": "authorization_pending"}))
    locks = Path(env["XDG_STATE_HOME"], "oauth-helper", "locks")
    process = subprocess.Popen(
        [GIT_HELPER, "get"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(f"protocol=http\nhost={host}\n\n")
    process.stdin.close()
    deadline = time.monotonic() + 20
    while not list(locks.glob("*.sign-in")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(locks.glob("*.sign-in")), "the sign-in never started"

    process.send_signal(signum)
    process.wait(timeout=20)

    assert process.returncode == 128 + signum
    assert list(locks.glob("*.sign-in")) == []
    assert process.stdout is not None and process.stdout.read() == ""
    process.stdout.close()
    assert process.stderr is not None
    process.stderr.close()
