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

from helper.store import Record, Store

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

    @pytest.mark.parametrize("expiry", ["²", "١٢٣٤٥٦٧٨٩٠", "+5", "5.0"])
    def test_an_expiry_that_is_not_a_number_is_not_stored(
        self, env: dict[str, str], expiry: str
    ) -> None:
        store(env, username="alice", password="pw-a", password_expiry_utc=expiry)

        assert get(env) == {"username": "alice", "password": "pw-a"}

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


class TestKeySelection:
    """client_id and scope select a key for non-git callers (protocol.md)."""

    def test_erase_removes_every_match_at_once(self, env: dict[str, str]) -> None:
        for client_id in ("app-1", "app-2"):
            store(env, username="alice", password="pw-same", client_id=client_id)
        store(env, username="bob", password="pw-b")

        erase(env, password="pw-same")

        assert get(env, client_id="app-1") == {}
        assert get(env, client_id="app-2") == {}
        assert get(env, username="bob")["password"] == "pw-b"

    def test_erase_with_a_client_id_keeps_other_clients(
        self, env: dict[str, str]
    ) -> None:
        for client_id in ("app-1", "app-2"):
            store(env, username="alice", password="pw-same", client_id=client_id)

        erase(env, client_id="app-1")

        assert get(env, client_id="app-1") == {}
        assert get(env, client_id="app-2")["password"] == "pw-same"

    def test_scopes_are_a_set(self, env: dict[str, str]) -> None:
        store(env, username="alice", password="pw-a", scope="write read")

        assert get(env, scope="read write")["password"] == "pw-a"
        erase(env, scope="read,write")
        assert get(env, scope="write read") == {}

    def test_request_attributes_alone_serve_no_host(self, env: dict[str, str]) -> None:
        for extra in ({"client_id": "abc"}, {"scope": "read"}):
            asked = request(protocol="https", host="nothing.test", **extra)
            done = run_helper("get", asked, env)

            assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_erase_naming_another_credential_keeps_the_record(
    env: dict[str, str],
) -> None:
    authtype = {"capability[]": "authtype", "authtype": "Bearer"}
    store(env, username="alice", credential="token-a", **authtype)

    erase(env, credential="token-other", **authtype)
    assert get(env, "capability[]=authtype")["credential"] == "token-a"

    erase(env, credential="token-a", **authtype)
    assert get(env, "capability[]=authtype") == {}


def serve(env: dict[str, str], token_url: str) -> None:
    """Configure HOST in git config, as a served host with client ID ``app``."""
    url = f"credential.https://{HOST}"
    for key, value in (("oauthClientId", "app"), ("oauthTokenURL", token_url)):
        git = ["git", "config", "--global", f"{url}.{key}", value]
        subprocess.run(git, env=env, check=True)


def _login_record(env: dict[str, str], **fields: str) -> Record:
    return Record(
        protocol="https",
        host=HOST,
        username="oauth2",
        client_id="app",
        origin="login",
        **fields,
    )


def _signed_in(env: dict[str, str], **fields: str) -> tuple[Store, Record]:
    """HOST served, and a record it signed in for (T1 and RT1 unless given)."""
    serve(env, token_url=f"https://{HOST}/token")
    st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
    values = {"password": "T1", "oauth_refresh_token": "RT1", **fields}
    record = _login_record(env, **values)
    st.save(record)
    return st, record


def test_late_store_of_a_retired_token_keeps_the_new_one(
    env: dict[str, str],
) -> None:
    # Process A answered T1; process B refreshed to T2 (rotating the refresh
    # token); A's git then stores T1. Saving it would lose T2 and RT2.
    serve(env, token_url=f"https://{HOST}/token")
    st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
    future = str(int(time.time()) + 3600)
    first = _login_record(
        env, password="T1", oauth_refresh_token="RT1", password_expiry_utc=future
    )
    st.save(first)
    st.save(first.replaced(password="T2", oauth_refresh_token="RT2"))

    store(env, username="oauth2", password="T1", password_expiry_utc=future)

    kept = st.reload(first)
    assert kept is not None
    assert (kept.password, kept.oauth_refresh_token) == ("T2", "RT2")
    assert get(env)["password"] == "T2"


def test_a_password_from_elsewhere_keeps_the_signed_in_refresh_token(
    env: dict[str, str],
) -> None:
    # The provider was down: the refresh failed, another helper (or the user)
    # supplied a password that worked, and git stores it under our key.
    past = str(int(time.time()) - 10)
    st, signed_in = _signed_in(env, password_expiry_utc=past)

    store(env, username="oauth2", password="PAT")

    kept = st.reload(signed_in)
    assert kept is not None
    assert (kept.password, kept.oauth_refresh_token) == ("PAT", "RT1")
    assert kept.origin == "login" and kept.held_token("T1")
    # Served as stored; our refresh token still never leaves the store.
    assert get(env) == {"username": "oauth2", "password": "PAT"}

    # Once git rejects it, the refresh token is what is left for a silent refresh.
    erase(env, password="PAT")
    after = st.reload(signed_in)
    assert after is not None
    assert (after.password, after.oauth_refresh_token) == ("", "RT1")


def test_a_store_with_its_own_refresh_token_replaces_ours(
    env: dict[str, str],
) -> None:
    st, signed_in = _signed_in(env)

    store(env, username="oauth2", password="T9", oauth_refresh_token="RT9")

    kept = st.reload(signed_in)
    assert kept is not None
    assert (kept.password, kept.oauth_refresh_token, kept.origin) == (
        "T9",
        "RT9",
        "store",
    )


def test_a_link_in_a_records_place_is_a_miss_said_once(env: dict[str, str]) -> None:
    store(env, username="alice", password="pw-a")
    st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
    (path,) = Path(env["OAUTH_HELPER_HOME"], "records").glob("*/*")
    path.unlink()
    path.symlink_to(path)  # a link is never followed, even to itself

    done = run_helper("get", request(protocol="https", host=HOST), env)
    assert (done.returncode, done.stdout) == (0, "")
    assert len(done.stderr.splitlines()) == 1
    assert "ignoring an unreadable stored record (kept as " in done.stderr

    # The next store replaces what could not be read.
    done = run_helper(
        "store",
        request(protocol="https", host=HOST, username="alice", password="pw-new"),
        env,
    )
    assert (done.returncode, done.stdout) == (0, "")
    assert get(env)["password"] == "pw-new"
    assert next(iter(st.all_records())).username == "alice"


def test_unreachable_provider_answers_the_real_expiry(
    env: dict[str, str],
) -> None:
    # Inside the safety margin the token is still accepted by the server;
    # answered with expiry minus the margin, git would throw it away.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        serve(env, token_url=f"http://127.0.0.1:{probe.getsockname()[1]}/token")
    expiry = str(int(time.time()) + 30)  # inside the default 60 s margin
    st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
    record = _login_record(
        env, password="T1", oauth_refresh_token="RT1", password_expiry_utc=expiry
    )
    st.save(record)
    # Obtained an hour ago: the margin is not cut to half of a 30 s life.
    path = next(Path(env["OAUTH_HELPER_HOME"], "records").glob("*/*"))
    hour_ago = str(int(time.time()) - 3600)
    text = path.read_text()
    path.write_text(
        text.replace(f"updated={st.reload(record).updated}", f"updated={hour_ago}")
    )

    done = run_helper("get", request(protocol="https", host=HOST), env)

    assert done.returncode == 0
    answer = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert answer == {
        "username": "oauth2",
        "password": "T1",
        "password_expiry_utc": expiry,
    }
    assert "could not refresh" in done.stderr


def test_an_authtype_record_with_a_password_serves_older_callers(
    env: dict[str, str],
) -> None:
    store(
        env,
        **{"capability[]": "authtype"},
        username="alice",
        password="pw-a",
        authtype="Bearer",
        credential="token-a",
    )

    assert get(env) == {"username": "alice", "password": "pw-a"}
    assert get(env, "capability[]=authtype")["credential"] == "token-a"


def test_authtype_without_the_capability_and_no_password_stores_nothing(
    env: dict[str, str],
) -> None:
    store(env, username="alice", authtype="Bearer", credential="token-a")

    assert not Path(env["OAUTH_HELPER_HOME"], "records").exists()
    assert get(env, "capability[]=authtype") == {}


def test_a_relative_state_folder_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    # git runs helpers inside each repository: a relative folder would put
    # tokens in every working tree.
    done = subprocess.run(
        [str(HELPER), "store"],
        input=request(protocol="https", host=HOST, username="a", password="pw-a"),
        capture_output=True,
        text=True,
        env={**env, "OAUTH_HELPER_HOME": "state"},
        cwd=tmp_path,
        check=False,
    )

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "oauth-helper: OAUTH_HELPER_HOME must be an absolute path\n"
    assert not (tmp_path / "state").exists()


def test_an_echo_is_known_even_when_the_keyring_cannot_unlock(
    env: dict[str, str],
) -> None:
    # git stores back every token it used; with the keyring locked, the
    # sealed record cannot be read, and must still not be overwritten.
    serve(env, token_url=f"https://{HOST}/token")
    st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
    future = str(int(time.time()) + 3600)
    st.save(
        _login_record(
            env, password="T1", oauth_refresh_token="RT1", password_expiry_utc=future
        )
    )
    path = next(Path(env["OAUTH_HELPER_HOME"], "records").glob("*/*"))
    secrets = ("password=T1\n", "oauth_refresh_token=RT1\n")
    text = path.read_text()
    for line in secrets:
        text = text.replace(line, "")
    locked = text.replace("kind=file", "kind=keyring") + "sealed=unopenable\n"
    path.write_text(locked)

    store(env, username="oauth2", password="T1", password_expiry_utc=future)

    assert path.read_text() == locked


def _sealed_unopenable(env: dict[str, str]) -> Path:
    """The one record file, its secrets turned into a blob no keyring opens."""
    path = next(Path(env["OAUTH_HELPER_HOME"], "records").glob("*/*"))
    text = path.read_text()
    kept = [line for line in text.splitlines(keepends=True) if "=" in line]
    secret = ("password=", "oauth_refresh_token=")
    text = "".join(line for line in kept if not line.startswith(secret))
    path.write_text(text.replace("kind=file", "kind=keyring") + "sealed=unopenable\n")
    return path


def test_a_store_over_a_record_that_cannot_be_unlocked_keeps_it(
    env: dict[str, str],
) -> None:
    # A locked keyring: the sealed refresh token cannot be read back, so a
    # different password must not replace the record that holds it.
    _signed_in(env, password_expiry_utc=str(int(time.time()) - 10))
    path = _sealed_unopenable(env)
    locked = path.read_text()

    other = request(protocol="https", host=HOST, username="oauth2", password="PAT")
    done = run_helper("store", other, env)

    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == (
        f"oauth-helper: not storing the credential for {HOST}: the stored token "
        "cannot be unlocked now\n"
    )
    assert path.read_text() == locked


def test_an_authtype_credential_over_a_signed_in_record_goes_with_its_erase(
    env: dict[str, str],
) -> None:
    st, signed_in = _signed_in(env)
    authtype = {"capability[]": "authtype", "authtype": "Bearer"}

    store(env, username="oauth2", credential="USERCRED", **authtype)
    kept = st.reload(signed_in)
    assert kept is not None
    assert (kept.credential, kept.oauth_refresh_token) == ("USERCRED", "RT1")

    erase(env, username="oauth2", credential="USERCRED", **authtype)
    after = st.reload(signed_in)
    assert after is not None
    assert (after.password, after.authtype, after.credential) == ("", "", "")
    assert after.oauth_refresh_token == "RT1"


def test_store_and_erase_do_not_wait_for_a_sign_in_under_way(
    env: dict[str, str],
) -> None:
    # The sign-in writes only at its end (and then wins, being newer); if it
    # fails, what git stored meanwhile must still be there.
    st, record = _signed_in(env)

    with st.lock(record, timeout=1):
        st.mark_sign_in(record, True)  # as a signing-in process has
        started = time.monotonic()
        store(env, username="oauth2", password="PAT")
        stored = st.reload(record)
        erase(env, username="oauth2", password="PAT")
        waited = time.monotonic() - started

    assert waited < 5  # not the minutes a sign-in may take
    assert stored is not None
    assert (stored.password, stored.oauth_refresh_token) == ("PAT", "RT1")
    after = st.reload(record)
    assert after is not None
    assert (after.password, after.oauth_refresh_token) == ("", "RT1")


def test_a_refresh_token_the_helper_obtained_never_reaches_stdout(
    env: dict[str, str],
) -> None:
    # An erased login record of a host no longer configured: only its
    # refresh token is left, and it stays in the store.
    st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
    past = str(int(time.time()) - 10)
    st.save(_login_record(env, oauth_refresh_token="RT-own", password_expiry_utc=past))

    assert get(env, client_id="app") == {}


def test_an_expired_record_of_another_user_is_refreshed_for_that_user(
    env: dict[str, str],
) -> None:
    # A request without a username matches any user's record; refreshing it
    # must use that record's refresh token, not sign in as someone new.
    from flows.fakeserver import FakeServer, Reply

    issued = {"access_token": "AT-new", "expires_in": 3600, "token_type": "Bearer"}
    with FakeServer() as fake:
        fake.route("/token", Reply(200, issued))
        serve(env, token_url=fake.url("/token"))
        st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
        past = str(int(time.time()) - 10)
        record = _login_record(
            env, password="AT-old", oauth_refresh_token="RT-a", password_expiry_utc=past
        )
        st.save(record.copy(username="alice"))

        answer = get(env)

        sent = [seen.form.get("refresh_token") for seen in fake.seen("/token")]
    assert sent == ["RT-a"]
    assert (answer["username"], answer["password"]) == ("alice", "AT-new")


def test_a_fresh_record_of_another_user_wins_over_an_expired_exact_one(
    env: dict[str, str],
) -> None:
    # Without a username any user's credential answers: the one that works
    # now beats a newer, expired one that would need the network.
    from flows.fakeserver import FakeServer, Reply

    with FakeServer() as fake:
        fake.route("/token", Reply(400, {"error": "invalid_grant"}))
        serve(env, token_url=fake.url("/token"))
        store(env, username="bob", password="BOBPW")
        st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
        past = str(int(time.time()) - 10)
        st.save(
            _login_record(
                env, password="OLD", oauth_refresh_token="RT", password_expiry_utc=past
            )
        )

        answer = get(env)
        requests = list(fake.requests)

    assert answer == {"username": "bob", "password": "BOBPW"}
    assert requests == []


def test_server_text_reaches_stderr_escaped(env: dict[str, str]) -> None:
    from flows.fakeserver import FakeServer, Reply

    refused = {"error": "invalid_client", "error_description": "\x1b[2Jgone\x07"}
    with FakeServer() as fake:
        fake.route("/token", Reply(400, refused))
        serve(env, token_url=fake.url("/token"))
        st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
        past = str(int(time.time()) - 10)
        st.save(
            _login_record(env, oauth_refresh_token="RT-a", password_expiry_utc=past)
        )

        done = run_helper("get", request(protocol="https", host=HOST), env)

    assert (done.returncode, done.stdout) == (1, "")
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert "\\x1b[2Jgone\\x07" in done.stderr
    assert done.stderr.count("\n") == 1
