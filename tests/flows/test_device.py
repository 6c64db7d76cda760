"""helper.flows.device (RFC 8628) against a scripted local provider."""

import itertools
import json
import time
import urllib.parse

import pytest

from flows.fakeserver import FakeServer, Reply
from helper.errors import ConfigError, FlowError, TransientError
from helper.flows import device
from helper.flows.device import login_device
from helper.providers import Provider

GRANT = {
    "device_code": "device-code-secret",
    "user_code": "WDJB-MJHT",
    "verification_uri": "https://id.example/device",
    "verification_uri_complete": "https://id.example/device?user_code=WDJB-MJHT",
    "expires_in": 600,
}
PENDING = Reply(400, {"error": "authorization_pending"})
TOKENS = Reply(200, {"access_token": "at", "refresh_token": "rt", "expires_in": 60})


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    monkeypatch.setattr(device, "DEFAULT_INTERVAL", 0.05)
    monkeypatch.setattr(device, "SLOW_DOWN_STEP", 0.25)
    monkeypatch.setattr(device, "MIN_INTERVAL", 0.01)


@pytest.fixture
def fake():
    with FakeServer() as server:
        yield server


def make_provider(fake, **values):
    settings = {
        "client_id": "cli",
        "scopes": ("openid", "offline_access"),
        "device_auth_url": fake.url("/device/auth"),
        "token_url": fake.url("/token"),
    }
    return Provider(**{**settings, **values})


def gaps(fake):
    times = [r.at for r in fake.seen("/token")]
    return [b - a for a, b in itertools.pairwise(times)]


def test_pending_then_tokens(fake, prompts, capsys):
    fake.route("/device/auth", Reply(200, GRANT))
    fake.route("/token", PENDING, PENDING, TOKENS)

    token = login_device(make_provider(fake), timeout=10)

    assert (token.access_token, token.refresh_token) == ("at", "rt")
    assert fake.seen("/device/auth")[0].form == {
        "client_id": "cli",
        "scope": "openid offline_access",
    }
    polls = fake.seen("/token")
    assert len(polls) == 3
    assert polls[0].form == {
        "client_id": "cli",
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": "device-code-secret",
    }
    host = urllib.parse.urlsplit(fake.origin).netloc
    assert prompts() == [
        f"to sign in to {host}, open https://id.example/device "
        "and enter the code WDJB-MJHT",
        f"or open {GRANT['verification_uri_complete']}",
    ]
    # Logged, not printed: only the CLI writes to stderr.
    assert capsys.readouterr().err == ""


def test_slow_down_widens_the_interval(fake):
    fake.route("/device/auth", Reply(200, GRANT))
    fake.route("/token", PENDING, Reply(400, {"error": "slow_down"}), PENDING, TOKENS)

    login_device(make_provider(fake), timeout=10)

    first, second, third = gaps(fake)
    # Below the widened wait, with room for a loaded machine's scheduling.
    assert first < 0.28
    # After slow_down every later wait is at least 0.05 + 0.25 s (§3.5).
    assert second >= 0.29
    assert third >= 0.29


def test_interval_from_the_server_is_honoured(fake):
    fake.route("/device/auth", Reply(200, {**GRANT, "interval": 0.3}))
    fake.route("/token", PENDING, TOKENS)

    login_device(make_provider(fake), timeout=10)

    assert gaps(fake)[0] >= 0.29


def test_an_interval_below_the_floor_is_raised_to_it(fake, monkeypatch):
    monkeypatch.setattr(device, "MIN_INTERVAL", 0.2)
    fake.route("/device/auth", Reply(200, {**GRANT, "interval": 0.000001}))
    fake.route("/token", PENDING, PENDING, TOKENS)

    login_device(make_provider(fake), timeout=10)

    assert len(fake.seen("/token")) == 3
    assert min(gaps(fake)) >= 0.19


@pytest.mark.parametrize("error", ["access_denied", "expired_token"])
def test_final_errors_carry_their_code(fake, error):
    fake.route("/device/auth", Reply(200, GRANT))
    fake.route("/token", PENDING, Reply(400, {"error": error}))

    with pytest.raises(FlowError) as info:
        login_device(make_provider(fake), timeout=10)

    assert info.value.error == error
    assert len(fake.seen("/token")) == 2


def test_unknown_error_stops_polling(fake):
    fake.route("/device/auth", Reply(200, GRANT))
    fake.route("/token", Reply(401, {"error": "invalid_client"}))

    with pytest.raises(FlowError) as info:
        login_device(make_provider(fake), timeout=10)

    assert info.value.error == "invalid_client"
    assert len(fake.seen("/token")) == 1


def test_timeout_stops_polling(fake):
    fake.route("/device/auth", Reply(200, GRANT))
    fake.route("/token", PENDING)

    started = time.monotonic()
    with pytest.raises(FlowError, match="timed out") as info:
        login_device(make_provider(fake), timeout=0.5)

    assert type(info.value) is FlowError
    assert time.monotonic() - started < 2


def test_device_code_lifetime_bounds_the_wait(fake):
    fake.route("/device/auth", Reply(200, {**GRANT, "expires_in": 1}))
    fake.route("/token", PENDING)

    started = time.monotonic()
    with pytest.raises(FlowError, match="timed out"):
        login_device(make_provider(fake), timeout=60)

    assert time.monotonic() - started < 3


def test_unreachable_token_endpoint_backs_off_then_is_transient(fake):
    fake.route("/device/auth", Reply(200, GRANT))
    fake.route("/token", Reply(503, "<html>down</html>"))

    with pytest.raises(TransientError):
        login_device(make_provider(fake), timeout=1.5)

    spaced = gaps(fake)
    assert len(spaced) >= 2
    # RFC 8628 §3.5: exponential backoff on trouble.
    assert spaced[1] > spaced[0] * 1.5


def test_device_endpoint_refusal_is_a_flow_error(fake):
    fake.route("/device/auth", Reply(400, {"error": "invalid_client"}))

    with pytest.raises(FlowError) as info:
        login_device(make_provider(fake), timeout=5)

    assert info.value.error == "invalid_client"


def test_grant_without_user_code_is_refused(fake):
    fake.route("/device/auth", Reply(200, {**GRANT, "user_code": ""}))

    with pytest.raises(FlowError, match="without user_code"):
        login_device(make_provider(fake), timeout=5)


def test_google_style_verification_url_is_accepted(fake, prompts):
    grant = {k: v for k, v in GRANT.items() if k != "verification_uri"}
    grant["verification_url"] = "https://www.google.com/device"
    fake.route("/device/auth", Reply(200, grant))
    fake.route("/token", TOKENS)

    login_device(make_provider(fake), timeout=5)

    assert "open https://www.google.com/device and enter the code" in prompts()[0]


def test_client_secret_is_sent_when_configured(fake):
    fake.route("/device/auth", Reply(200, GRANT))
    fake.route("/token", TOKENS)

    login_device(make_provider(fake, client_secret="sec"), timeout=5)

    assert fake.seen("/device/auth")[0].form["client_secret"] == "sec"
    assert fake.seen("/token")[0].form["client_secret"] == "sec"


def test_insecure_device_url_is_refused(fake):
    provider = make_provider(fake, device_auth_url="http://id.example/device")

    with pytest.raises(ConfigError, match="device_auth_url"):
        login_device(provider)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("verification_uri", "http://evil.example/device"),
        ("verification_uri", "https://id.example/\nFAKE LINE"),
        ("user_code", "UC\x1b[31mRED"),
    ],
)
def test_what_would_forge_the_prompt_is_refused(fake, prompts, field, value):
    fake.route("/device/auth", Reply(200, {**GRANT, field: value}))
    fake.route("/token", TOKENS)

    with pytest.raises(FlowError) as caught:
        login_device(make_provider(fake), timeout=5)

    assert field in str(caught.value)
    assert prompts() == []
    assert fake.seen("/token") == []


def test_an_unsafe_complete_uri_is_left_out(fake, prompts):
    forged = "https://id.example/device?user_code=X\r\nFAKE"
    fake.route(
        "/device/auth", Reply(200, {**GRANT, "verification_uri_complete": forged})
    )
    fake.route("/token", TOKENS)

    assert login_device(make_provider(fake), timeout=5).access_token == "at"
    assert len(prompts()) == 1 and "FAKE" not in prompts()[0]


HUGE = "1" + "0" * 400


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("interval", HUGE),
        ("interval", "1e400"),
        ("interval", "-1"),
        ("expires_in", HUGE),
        ("expires_in", "-" + HUGE),
        ("expires_in", "1e400"),
    ],
)
def test_unusable_numbers_in_the_grant_fall_back_to_defaults(fake, field, raw):
    # Raw JSON text: a 401-digit integer is a valid JSON number.
    grant = {k: v for k, v in GRANT.items() if k != field}
    body = json.dumps(grant)[:-1] + f', "{field}": {raw}}}'
    fake.route("/device/auth", Reply(200, body))
    fake.route("/token", PENDING, TOKENS)

    started = time.monotonic()
    token = login_device(make_provider(fake), timeout=5)

    assert token.access_token == "at"
    assert len(fake.seen("/token")) == 2
    # The default interval (0.05 s here), not hundreds of digits of seconds.
    assert time.monotonic() - started < 2


def test_a_redirect_from_the_token_endpoint_is_not_followed(fake):
    with FakeServer() as elsewhere:
        elsewhere.route("/token", TOKENS)
        # Not even to loopback: a token request is never sent on.
        location = elsewhere.url("/token")
        fake.route("/device/auth", Reply(200, GRANT))
        fake.route("/token", Reply(308, "", headers={"Location": location}))

        with pytest.raises(FlowError, match="answered a redirect"):
            login_device(make_provider(fake), timeout=5)

    assert fake.seen("/token")[0].form["device_code"] == GRANT["device_code"]
    assert elsewhere.requests == []
