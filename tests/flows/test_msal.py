"""The MSAL path against the rig's real OpenID provider, reached through MSAL's
``oidc_authority`` over HTTPS, with headless Chromium as the user's browser.

MSAL wants an authority with a path segment (a tenant), so these tests run
their own provider under an issuer path.
"""

import json
import socket
import sys
import threading
import time
from pathlib import Path

import certifi
import pytest
from rig.browser import approve

from flows.fakeserver import DEVICE_GRANT, FakeServer, Reply, tls_context
from helper import login
from helper.errors import ConfigError, FlowError, TransientError
from helper.flows import msal as entra
from helper.protocol import Credential
from helper.providers import Provider
from helper.store import Record, Store

OPEN_BROWSER = Path(__file__).resolve().parents[1] / "rig" / "open-browser"
SCOPES = ("openid", "git")


@pytest.fixture
def provider(tenant):
    """provider.js under /tenant: an issuer MSAL's oidc_authority accepts."""
    return tenant


@pytest.fixture(autouse=True)
def rig_env(provider, monkeypatch, tmp_path, rig_log_dir):
    """Trust only the rig's CA and use the rig's browser, set explicitly."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, provider.ca_path)
    for name in ("SSH_CONNECTION", "SSH_TTY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BROWSER", str(OPEN_BROWSER))
    monkeypatch.setenv("OAUTH_RIG_PYTHON", sys.executable)
    monkeypatch.setenv("OAUTH_RIG_LOG_DIR", str(rig_log_dir))


def entra_settings(authority, **values):
    """Provider settings on the MSAL path."""
    return Provider(
        client_id="helper-test", scopes=SCOPES, authority=authority, **values
    )


@pytest.fixture
def settings(provider):
    return entra_settings(provider.issuer)


def browser_runs(log_dir):
    return len(list(log_dir.glob("browser-*.log")))


def device_login(settings, prompts, timeout=60):
    """Run entra.login_device in a thread; approve its code in Chromium."""
    result = {}

    def run():
        try:
            result["signed"] = entra.login_device(settings, timeout=timeout)
        except Exception as exc:  # handed to the test thread below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    approve(complete_uri(prompts, thread))
    thread.join(timeout=60)
    if "error" in result:
        raise result["error"]
    return result["signed"]


def complete_uri(prompts, thread):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and thread.is_alive():
        for line in prompts():
            if line.startswith("or open "):
                return line.removeprefix("or open ").strip()
        time.sleep(0.02)
    raise AssertionError(f"no verification_uri_complete shown: {prompts()!r}")


def cached(signed, kind):
    """The entries of one kind (AccessToken, RefreshToken...) in MSAL's cache."""
    return list(json.loads(signed.cache).get(kind, {}).values())


def test_browser_login_through_oidc_authority(
    provider, settings, prompts, capfd, rig_log_dir
):
    signed = entra.login_browser(settings, timeout=60)

    token = signed.token
    assert provider.introspect(token.access_token)["active"] is True
    assert token.expires_at is not None and token.expires_at > time.time() + 3000
    assert provider.counts()["authorization_code"] == 1
    assert browser_runs(rig_log_dir) == 1
    # MSAL checked the nonce and issuer of the ID token, and kept the account.
    assert cached(signed, "Account") and cached(signed, "RefreshToken")
    assert "\n" not in signed.cache
    out, err = capfd.readouterr()
    assert out == ""
    [shown] = prompts()
    assert shown.startswith(f"open this URL to sign in to 127.0.0.1:{provider.port}:")
    assert token.access_token not in err + shown


def test_silent_refresh_uses_the_cached_refresh_token(provider, settings, rig_log_dir):
    first = entra.login_browser(settings, timeout=60)

    second = entra.refresh(settings, first.cache)

    assert second is not None
    assert second.token.access_token != first.token.access_token
    assert provider.introspect(second.token.access_token)["active"] is True
    counts = provider.counts()
    assert (counts["authorization_code"], counts["refresh_token"]) == (1, 1)
    assert browser_runs(rig_log_dir) == 1
    # The rig rotates refresh tokens: the new one must be in the new cache.
    old = cached(first, "RefreshToken")[0]["secret"]
    assert cached(second, "RefreshToken")[0]["secret"] != old


def test_device_login_through_oidc_authority(provider, settings, prompts):
    signed = device_login(settings, prompts)

    assert provider.introspect(signed.token.access_token)["active"] is True
    assert provider.counts()["device_code"] >= 1
    assert cached(signed, "Account")


def test_device_flow_stops_at_our_deadline(provider, settings, prompts):
    started = time.monotonic()
    with pytest.raises(FlowError, match="timed out waiting for sign-in"):
        entra.login_device(settings, timeout=1.5)

    assert time.monotonic() - started < 4
    assert "enter the code" in prompts()[0]


def test_revoked_refresh_token_asks_for_a_new_login(provider, settings):
    signed = entra.login_browser(settings, timeout=60)
    provider.revoke_refresh()

    assert entra.refresh(settings, signed.cache) is None
    assert provider.counts()["refresh_token"] == 1


def test_refresh_without_a_cache_asks_for_a_login(provider, settings):
    assert entra.refresh(settings, "") is None
    assert provider.counts()["total"] == 0


def test_untrusted_certificate_is_a_config_error(provider, settings, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, certifi.where())

    with pytest.raises(ConfigError, match=r"TLS certificate of 127\.0\.0\.1"):
        entra.login_browser(settings, timeout=5)


def test_unreachable_authority_is_transient(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = entra_settings(f"https://127.0.0.1:{port}/tenant")

    with pytest.raises(TransientError, match=r"cannot reach 127\.0\.0\.1"):
        entra.refresh(closed, "")


@pytest.mark.parametrize(
    ("authority", "reason"),
    [
        ("http://127.0.0.1/tenant", "must be an https URL"),
        # MSAL needs a tenant (a path segment) in an oidc_authority.
        ("{issuer_root}", "one segment in a path"),
        # Discovery names another issuer than the one configured.
        ("{issuer}/other", "MSAL cannot use the authority"),
    ],
)
def test_unusable_authority_is_a_config_error(provider, authority, reason):
    issuer_root = provider.issuer.removesuffix("/tenant")
    authority = authority.format(issuer=provider.issuer, issuer_root=issuer_root)

    with pytest.raises(ConfigError, match=reason):
        entra.login_device(entra_settings(authority), timeout=1)


def test_reserved_scopes_are_left_to_msal(provider):
    # MSAL raises when given openid/profile/offline_access; it adds them.
    settings = entra_settings(provider.issuer)
    settings.scopes = ("openid", "profile", "offline_access")

    signed = entra.refresh(settings, "")

    assert signed is None


def test_msal_logger_stays_at_warning():
    import logging

    assert logging.getLogger("msal").getEffectiveLevel() == logging.WARNING


# --- login.obtain: the store side of the MSAL path --------------------------


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "state"), kind="file")


def obtain(settings, store):
    cred = Credential(protocol="https", host="git.example", path="")
    return login.obtain(cred, settings, store, interactive=True)


def test_obtain_signs_in_then_refreshes_silently(
    provider, settings, store, rig_log_dir
):
    first = obtain(settings, store)
    assert first is not None and first.msal_cache and not first.oauth_refresh_token
    # Our record says the token is stale: the next call refreshes.
    store.save(first.copy(password_expiry_utc=str(int(time.time()))))

    second = obtain(settings, store)

    assert second is not None and second.password != first.password
    assert provider.introspect(second.password)["active"] is True
    counts = provider.counts()
    assert (counts["authorization_code"], counts["refresh_token"]) == (1, 1)
    assert browser_runs(rig_log_dir) == 1
    assert store.reload(second).msal_cache == second.msal_cache


def test_obtain_falls_back_to_login_when_refresh_is_refused(
    provider, settings, store, rig_log_dir
):
    first = obtain(settings, store)
    store.save(first.copy(password_expiry_utc=str(int(time.time()))))
    provider.revoke_refresh()

    second = obtain(settings, store)

    assert provider.introspect(second.password)["active"] is True
    counts = provider.counts()
    assert (counts["authorization_code"], counts["refresh_token"]) == (2, 1)
    assert browser_runs(rig_log_dir) == 2


def test_obtain_keeps_the_cache_when_the_authority_is_unreachable(
    provider, settings, store
):
    first = obtain(settings, store)
    expired = first.copy(password_expiry_utc=str(int(time.time()) - 10))
    store.save(expired)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.authority = f"https://127.0.0.1:{port}/tenant"

    with pytest.raises(TransientError):
        obtain(settings, store)

    assert store.reload(first).msal_cache == first.msal_cache


def test_the_cache_is_a_secret_of_the_record():
    record = Record(protocol="https", host="h", msal_cache='{"a":"b=c"}')

    assert 'msal_cache={"a":"b=c"}' in record.secrets_text()
    assert "msal_cache" not in record.to_text(sealed="blob")
    assert "b=c" not in repr(record)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"user_code": "WDJB\x1b[2J\r\noauth-helper: signed in"}, "control characters"),
        ({"verification_uri": "http://phish.example/device"}, "not an https URL"),
        ({"verification_uri": "https://id.example/\x1b]0;title\x07"}, "not an https"),
    ],
)
def test_a_device_answer_unsafe_to_show_is_refused_before_it_is_shown(
    tmp_path, monkeypatch, prompts, answer, reason
):
    context, ca_path = tls_context(tmp_path)
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, str(ca_path))
    with FakeServer(tls=context) as fake:
        issuer = fake.url("/tenant")
        fake.route(
            "/tenant/.well-known/openid-configuration",
            Reply(
                200,
                {
                    "issuer": issuer,
                    "authorization_endpoint": fake.url("/authorize"),
                    "token_endpoint": fake.url("/token"),
                    "device_authorization_endpoint": fake.url("/device"),
                },
            ),
        )
        fake.route("/device", Reply(200, {**DEVICE_GRANT, **answer}))

        with pytest.raises(FlowError, match=reason):
            entra.login_device(entra_settings(issuer), timeout=5)

    assert prompts() == []
    assert fake.seen("/token") == []
