"""helper.login: what a refused refresh leaves behind, and which flow runs.

The token endpoint is a local misbehaving server; the store is a real file
store in the test's own folder.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flows.fakeserver import FakeServer, Reply, Seen

from helper import login
from helper.actions import target_record
from helper.errors import (
    ConfigError,
    FlowError,
    LockTimeoutError,
    StoreError,
    TransientError,
)
from helper.protocol import Credential
from helper.providers import Provider
from helper.store import Record, Store, files

OLD = "old-refresh-token-1"
NEW = "rotated-refresh-token-2"
REFUSED = Reply(400, {"error": "invalid_grant"})
CRED = Credential(protocol="https", host="git.example", path="")
BROWSER_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "SSH_CONNECTION")


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "state"), kind="file")


def make_provider(fake: FakeServer) -> Provider:
    return Provider(client_id="cli", token_url=fake.url("/token"))


def save_expired(store: Store, provider: Provider) -> Record:
    """A login record whose access token has expired; its refresh token is OLD."""
    record = target_record(CRED, provider).copy(
        password="expired-access-token",
        password_expiry_utc=str(int(time.time()) - 10),
        oauth_refresh_token=OLD,
        origin="login",
    )
    store.save(record)
    return record


def test_a_token_rotated_meanwhile_is_returned_and_kept(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    stale = save_expired(store, provider)
    expiry = str(int(time.time()) + 3600)

    def rotate_then_refuse(seen: Seen) -> Reply:
        # Another helper refreshed with OLD first; the provider now refuses it.
        store.save(
            stale.copy(
                password="fresh-access-token",
                password_expiry_utc=expiry,
                oauth_refresh_token=NEW,
            )
        )
        return REFUSED

    fake.route("/token", rotate_then_refuse)

    got = login.obtain(CRED, provider, store, interactive=False)
    kept = store.reload(stale)

    assert [r.form["refresh_token"] for r in fake.seen("/token")] == [OLD]
    assert got is not None and kept is not None
    assert (got.password, got.oauth_refresh_token, got.password_expiry_utc) == (
        "fresh-access-token",
        NEW,
        expiry,
    )
    assert (kept.password, kept.oauth_refresh_token, kept.password_expiry_utc) == (
        "fresh-access-token",
        NEW,
        expiry,
    )


def rotate_erase_then(
    store: Store, stale: Record, then: Reply
) -> Callable[[Seen], Reply]:
    """A token endpoint that refuses OLD after another machine rotated it.

    That machine refreshed with OLD, then git there rejected the access
    token: its erase kept the refresh token NEW. NEW is answered *then*.
    """

    def answer(seen: Seen) -> Reply:
        if seen.form["refresh_token"] == NEW:
            return then
        erased = stale.copy(password="", oauth_refresh_token=NEW)
        store.save(erased.copy(password_expiry_utc=str(int(time.time()))))
        return REFUSED

    return answer


def test_a_rotated_refresh_token_without_access_token_is_used(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    stale = save_expired(store, provider)
    issued = {"access_token": "at-3", "refresh_token": "rt-3", "expires_in": 3600}
    fake.route("/token", rotate_erase_then(store, stale, Reply(200, issued)))

    got = login.obtain(CRED, provider, store, interactive=False)
    kept = store.reload(stale)

    assert [r.form["refresh_token"] for r in fake.seen("/token")] == [OLD, NEW]
    assert got is not None and kept is not None
    assert (got.password, got.oauth_refresh_token) == ("at-3", "rt-3")
    assert (kept.password, kept.oauth_refresh_token) == ("at-3", "rt-3")


def test_a_rotated_refresh_token_refused_too_is_wiped(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    stale = save_expired(store, provider)
    fake.route("/token", rotate_erase_then(store, stale, REFUSED))

    got = login.obtain(CRED, provider, store, interactive=False)
    kept = store.reload(stale)

    assert [r.form["refresh_token"] for r in fake.seen("/token")] == [OLD, NEW]
    assert got is None and kept is not None
    assert (kept.password, kept.oauth_refresh_token) == ("", "")


def test_a_refused_token_is_wiped_and_nothing_is_returned(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    stale = save_expired(store, provider)
    fake.route("/token", REFUSED)

    got = login.obtain(CRED, provider, store, interactive=False)
    kept = store.reload(stale)

    assert got is None
    assert [r.form["refresh_token"] for r in fake.seen("/token")] == [OLD]
    assert kept is not None
    assert (kept.password, kept.oauth_refresh_token, kept.password_expiry_utc) == (
        "",
        "",
        "",
    )
    assert kept.refreshable == ""


@pytest.fixture
def no_browser(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment where nothing says a browser can be shown."""
    for name in (*BROWSER_VARIABLES, "SSH_TTY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def flow_for(flow: str = "auto", device: bool = True, **values: str) -> str:
    url = "https://id.example/device" if device else ""
    return login.choose_flow(Provider(flow=flow, device_auth_url=url, **values))


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="only Linux needs a display"
)
def test_auto_is_device_without_a_display(no_browser: pytest.MonkeyPatch) -> None:
    assert flow_for() == "device"


def test_auto_is_device_over_ssh_even_with_a_browser(
    no_browser: pytest.MonkeyPatch,
) -> None:
    no_browser.setenv("BROWSER", "firefox")
    no_browser.setenv("DISPLAY", ":0")
    no_browser.setenv("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22")

    assert flow_for() == "device"


def test_auto_is_browser_with_browser_set_and_no_ssh(
    no_browser: pytest.MonkeyPatch,
) -> None:
    no_browser.setenv("BROWSER", "firefox")

    assert flow_for() == "browser"


def test_auto_is_browser_without_a_device_endpoint(
    no_browser: pytest.MonkeyPatch,
) -> None:
    no_browser.setenv("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22")

    assert flow_for(device=False) == "browser"


def test_auto_through_msal_is_device_over_ssh(no_browser: pytest.MonkeyPatch) -> None:
    # MSAL finds the device endpoint through discovery, so none is configured.
    no_browser.setenv("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22")
    authority = "https://login.microsoftonline.com/organizations"

    assert flow_for(device=False, authority=authority) == "device"


def test_an_explicit_browser_flow_is_kept_over_ssh(
    no_browser: pytest.MonkeyPatch,
) -> None:
    no_browser.setenv("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22")

    assert flow_for("browser") == "browser"


def test_an_explicit_device_flow_is_kept_with_a_browser(
    no_browser: pytest.MonkeyPatch,
) -> None:
    no_browser.setenv("BROWSER", "firefox")
    no_browser.setenv("DISPLAY", ":0")

    assert flow_for("device") == "device"


@pytest.mark.parametrize("error", ["invalid_client", "invalid_scope"])
def test_a_refusal_other_than_invalid_grant_keeps_the_refresh_token(
    fake: FakeServer, store: Store, error: str
) -> None:
    provider = make_provider(fake)
    stale = save_expired(store, provider)
    fake.route("/token", Reply(400, {"error": error}))

    with pytest.raises(FlowError) as caught:
        login.obtain(CRED, provider, store, interactive=True)

    assert caught.value.error == error
    kept = store.reload(stale)
    assert kept is not None and kept.oauth_refresh_token == OLD
    assert len(fake.seen("/token")) == 1  # and no sign-in was started


def test_temporarily_unavailable_keeps_the_refresh_token(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    stale = save_expired(store, provider)
    fake.route("/token", Reply(400, {"error": "temporarily_unavailable"}))

    with pytest.raises(TransientError):
        login.obtain(CRED, provider, store, interactive=True)

    kept = store.reload(stale)
    assert kept is not None and kept.oauth_refresh_token == OLD


def test_a_fresh_short_lived_token_gets_half_its_life_as_margin(
    fake: FakeServer, store: Store
) -> None:
    # A 30 s token must not be answered as already expired by a 60 s margin.
    provider = make_provider(fake)
    save_expired(store, provider)
    issued = {"access_token": "at-30", "expires_in": 30}
    fake.route("/token", Reply(200, issued))

    got = login.obtain(CRED, provider, store, interactive=False)

    assert got is not None and got.password == "at-30"
    assert got.margin(60) == 15
    assert got.is_fresh(60)


def test_a_busy_provider_is_named_with_its_answer(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    stale = save_expired(store, provider)
    fake.route("/token", Reply(429, {}))

    with pytest.raises(TransientError) as caught:
        login.obtain(CRED, provider, store, interactive=True)

    assert "answered HTTP 429" in str(caught.value)
    assert "git.example" in str(caught.value)
    kept = store.reload(stale)
    assert kept is not None and kept.oauth_refresh_token == OLD


def test_no_token_endpoint_names_the_host(store: Store) -> None:
    provider = Provider(client_id="cli")

    with pytest.raises(ConfigError) as caught:
        login.obtain(CRED, provider, store, interactive=True)

    assert str(caught.value).startswith("no token endpoint for git.example: ")


def test_a_caller_nobody_watches_does_not_wait_for_a_sign_in(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    record = save_expired(store, provider)

    with store.lock(record, timeout=1):
        store.mark_sign_in(record, True)  # as the holder does around a sign-in
        started = time.monotonic()
        got = login.obtain(CRED, provider, store, interactive=False)
        waited = time.monotonic() - started

    assert got is None
    assert waited < 2  # well below a refresh's wait: it saw the sign-in
    assert fake.seen("/token") == []


def test_a_caller_nobody_watches_waits_for_a_refresh(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    record = save_expired(store, provider)
    expiry = str(int(time.time()) + 3600)
    holding = threading.Event()

    def refresh_elsewhere() -> None:
        with store.lock(record, timeout=1):
            holding.set()
            time.sleep(1.0)
            store.save(record.copy(password="refreshed", password_expiry_utc=expiry))

    other = threading.Thread(target=refresh_elsewhere)
    other.start()
    holding.wait(5)
    got = login.obtain(CRED, provider, store, interactive=False)
    other.join()

    assert got is not None and got.password == "refreshed"
    assert fake.seen("/token") == []


def test_a_caller_nobody_watches_gives_up_quietly_after_the_lock_timeout(
    fake: FakeServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider(fake)
    record = save_expired(store, provider)
    monkeypatch.setenv("OAUTH_HELPER_LOCK_TIMEOUT", "0.6")

    with store.lock(record, timeout=1):
        started = time.monotonic()
        got = login.obtain(CRED, provider, store, interactive=False)
        waited = time.monotonic() - started

    assert got is None
    assert 0.6 <= waited < 3
    assert fake.seen("/token") == []


def test_an_interactive_caller_is_told_when_the_wait_ends(
    fake: FakeServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider(fake)
    record = save_expired(store, provider)
    monkeypatch.setenv("OAUTH_HELPER_LOCK_TIMEOUT", "0.3")

    with store.lock(record, timeout=1):
        store.mark_sign_in(record, True)
        with pytest.raises(LockTimeoutError, match="another oauth-helper process"):
            login.obtain(CRED, provider, store, interactive=True)


def test_a_sign_in_mark_left_by_a_killed_process_turns_nobody_away(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    record = save_expired(store, provider)
    store.mark_sign_in(record, True)  # its process died; the lock went with it
    fake.route("/token", Reply(200, {"access_token": "new", "token_type": "Bearer"}))

    got = login.obtain(CRED, provider, store, interactive=False)

    assert got is not None and got.password == "new"
    assert not store.sign_in_marked(record)


def test_a_sign_in_is_marked_while_it_runs_and_not_after(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = Provider(client_id="cli", token_url="https://id.example/token")
    record = target_record(CRED, provider)
    seen = []

    def flow(cred: Credential, provider: Provider) -> object:
        seen.append(store.sign_in_marked(record))
        raise FlowError("the user closed the browser")

    monkeypatch.setattr(login, "_run_flow", flow)
    with pytest.raises(FlowError):
        login.obtain(CRED, provider, store, interactive=True)

    assert seen == [True]
    assert not store.sign_in_marked(record)


WAITER = """
import sys, time
from helper import login
from helper.actions import target_record
from helper.protocol import Credential
from helper.providers import Provider
from helper.store import Store

store = Store(sys.argv[1], kind="file")
cred = Credential(protocol="https", host="git.example", path="")
provider = Provider(client_id="cli", token_url="https://id.example/token")
fresh = str(int(time.time()) + 3600)
record = target_record(cred, provider)
store.save(record.copy(password="t", password_expiry_utc=fresh, origin="login"))
for interactive in (False, True):
    got = login.obtain(cred, provider, store, interactive=interactive)
    assert got is not None and got.password == "t"
print(sorted(m for m in ("requests", "oauthlib", "msal") if m in sys.modules))
"""


def test_a_waiter_that_finds_a_fresh_token_loads_no_http_library(
    tmp_path: Path,
) -> None:
    # The other callers of a refresh at expiry (16 git processes) each start
    # a Python: requests alone costs more than the rest of their work.
    done = subprocess.run(
        [sys.executable, "-c", WAITER, str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_a_refresh_drops_a_credential_stored_over_the_record(
    fake: FakeServer, store: Store
) -> None:
    # git 2.46 stored an authtype credential over our record; it expired.
    provider = make_provider(fake)
    record = save_expired(store, provider)
    store.save(record.copy(authtype="Bearer", credential="USERCRED"))
    issued = {"access_token": "new", "token_type": "Bearer", "expires_in": 3600}
    fake.route("/token", Reply(200, issued))

    got = login.obtain(CRED, provider, store, interactive=False)

    assert got is not None
    assert (got.password, got.authtype, got.credential) == ("new", "", "")
    kept = store.reload(record)
    assert kept is not None and (kept.authtype, kept.credential) == ("", "")


def test_a_credential_for_authtype_callers_is_no_answer_for_others(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    record = save_expired(store, provider)
    store.save(record.copy(password="", password_expiry_utc="", credential="USERCRED"))
    issued = {"access_token": "new", "token_type": "Bearer", "expires_in": 3600}
    fake.route("/token", Reply(200, issued))

    got = login.obtain(CRED, provider, store, interactive=False)

    assert got is not None and got.password == "new"
    assert [r.form["refresh_token"] for r in fake.seen("/token")] == [OLD]


def test_a_refused_refresh_token_git_stored_goes_with_its_record(
    fake: FakeServer, store: Store
) -> None:
    provider = make_provider(fake)
    record = save_expired(store, provider)
    store.save(record.copy(origin="store"))
    fake.route("/token", REFUSED)

    got = login.obtain(CRED, provider, store, interactive=False)

    assert got is None
    assert store.stored(record) is None
    assert [r.form["refresh_token"] for r in fake.seen("/token")] == [OLD]


def test_a_keyring_store_without_keyring_refuses_before_any_request(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider(fake)
    save_expired(Store(str(tmp_path / "state"), kind="file"), provider)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    keyring_only = Store(str(tmp_path / "state"), kind="keyring")

    with pytest.raises(StoreError, match="OAUTH_HELPER_STORE=keyring but the keyring"):
        login.obtain(CRED, provider, keyring_only, interactive=True)

    # The refresh token was not spent on a token that could not be kept.
    assert fake.seen("/token") == []


def test_a_token_the_store_cannot_keep_is_still_answered_once(
    fake: FakeServer,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = make_provider(fake)
    old = save_expired(store, provider)
    big = "a" * 8192
    fake.route("/token", Reply(200, {"access_token": big, "refresh_token": NEW}))
    monkeypatch.setattr(files, "RECORD_LIMIT", 4096)

    got = login.obtain(CRED, provider, store, interactive=False)

    assert got is not None and got.password == big
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "the credential is too large to store; using the new token without storing it"
    ]
    kept = store.stored(old)
    assert kept is not None and kept.oauth_refresh_token == OLD
