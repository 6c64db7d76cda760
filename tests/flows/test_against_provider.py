"""The flows against the rig's real OpenID provider (oidc-provider over TLS),
with headless Chromium as the user's browser.
"""

import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from rig.browser import approve

from helper import discovery
from helper.errors import ConfigError, FlowError
from helper.flows import device
from helper.flows.device import login_device
from helper.flows.pkce import login_browser
from helper.flows.refresh import refresh
from helper.providers import Provider

OPEN_BROWSER = Path(__file__).resolve().parents[1] / "rig" / "open-browser"
SCOPES = ("openid", "offline_access", "git")


@pytest.fixture(autouse=True)
def rig_env(provider, monkeypatch, tmp_path, rig_log_dir):
    """Trust only the rig's CA and use the rig's browser, set explicitly."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, provider.ca_path)
    for name in ("SSH_CONNECTION", "SSH_TTY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("BROWSER", str(OPEN_BROWSER))
    monkeypatch.setenv("OAUTH_RIG_PYTHON", sys.executable)
    monkeypatch.setenv("OAUTH_RIG_LOG_DIR", str(rig_log_dir))
    # The rig sends no interval (RFC 8628 default 5 s); poll faster here.
    monkeypatch.setattr(device, "DEFAULT_INTERVAL", 0.2)


@pytest.fixture
def settings(provider):
    """A Provider resolved the way the helper resolves it: by discovery."""
    document = discovery.discover(provider.issuer)
    return Provider(
        client_id=provider.client_id,
        issuer=provider.issuer,
        scopes=SCOPES,
        auth_url=document["authorization_endpoint"],
        token_url=document["token_endpoint"],
        device_auth_url=document["device_authorization_endpoint"],
        redirect_url="http://127.0.0.1/callback",
    )


def login_with_device(settings, prompts):
    """Run login_device in a thread; approve its code in Chromium."""
    result = {}

    def run():
        try:
            result["token"] = login_device(settings, timeout=60)
        except Exception as exc:  # handed to the test thread below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    url = wait_for_complete_uri(prompts, thread)
    approve(url)
    thread.join(timeout=60)
    if "error" in result:
        raise result["error"]
    return result["token"]


def wait_for_complete_uri(prompts, thread):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and thread.is_alive():
        for line in prompts():
            if line.startswith("or open "):
                return line.removeprefix("or open ").strip()
        time.sleep(0.02)
    raise AssertionError(f"no verification_uri_complete shown: {prompts()!r}")


def test_discovery_of_the_rig_issuer(provider):
    document = discovery.discover(provider.issuer)

    assert document["issuer"] == provider.issuer
    assert document["token_endpoint"] == provider.token_endpoint
    assert document["device_authorization_endpoint"] == (
        provider.device_authorization_endpoint
    )
    assert "S256" in document["code_challenge_methods_supported"]


def test_discovery_refuses_a_differently_spelled_issuer(provider):
    with pytest.raises(ConfigError, match="names issuer"):
        discovery.discover(provider.issuer + "/")


def test_browser_login(provider, settings, prompts):
    token = login_browser(settings, timeout=60)

    assert token.access_token
    assert token.refresh_token
    assert token.expires_at is not None and token.expires_at > time.time()
    assert set(token.scope.split()) <= set(SCOPES)
    assert provider.introspect(token.access_token)["active"] is True
    assert provider.counts()["authorization_code"] == 1
    assert prompts()[0].startswith("open this URL to sign in to 127.0.0.1:")


def test_browser_login_on_a_configured_port(provider, settings):
    # Not the registered localhost:8020: other suites may hold that port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.redirect_url = f"http://127.0.0.1:{port}/callback"

    token = login_browser(settings, timeout=60)

    assert provider.introspect(token.access_token)["active"] is True


def test_device_login(provider, settings, prompts):
    token = login_with_device(settings, prompts)

    assert token.refresh_token
    assert provider.introspect(token.access_token)["active"] is True
    assert provider.counts()["device_code"] >= 2


def test_refresh_rotates_and_a_reused_token_is_invalid_grant(
    provider, settings, prompts
):
    first = login_with_device(settings, prompts)

    second = refresh(settings, first.refresh_token)

    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert provider.introspect(second.access_token)["active"] is True
    with pytest.raises(FlowError) as info:
        refresh(settings, first.refresh_token)
    assert info.value.error == "invalid_grant"
    assert first.refresh_token not in str(info.value)


def test_revoked_refresh_token_is_invalid_grant(provider, settings):
    token = login_browser(settings, timeout=60)
    provider.revoke_refresh()

    with pytest.raises(FlowError) as info:
        refresh(settings, token.refresh_token)

    assert info.value.error == "invalid_grant"
