"""helper.flows.refresh against a misbehaving local token endpoint."""

import time

import pytest

from flows.fakeserver import FakeServer, Reply
from helper.errors import ConfigError, FlowError, TransientError
from helper.flows.refresh import refresh
from helper.providers import Provider

OLD = "old-refresh-token-1"
NEW = "new-refresh-token-2"


@pytest.fixture
def fake():
    with FakeServer() as server:
        yield server


def make_provider(fake, **values):
    return Provider(client_id="cli", token_url=fake.url("/token"), **values)


def test_rotated_refresh_token_is_returned(fake):
    fake.route(
        "/token",
        Reply(200, {"access_token": "at", "refresh_token": NEW, "expires_in": 3600}),
    )

    token = refresh(make_provider(fake), OLD)

    assert (token.access_token, token.refresh_token) == ("at", NEW)
    assert token.expires_at is not None
    assert abs(token.expires_at - (time.time() + 3600)) < 5
    assert fake.seen("/token")[0].form == {
        "grant_type": "refresh_token",
        "refresh_token": OLD,
        "client_id": "cli",
    }


def test_old_refresh_token_is_kept_when_none_is_sent(fake):
    fake.route("/token", Reply(200, {"access_token": "at", "token_type": "Bearer"}))

    token = refresh(make_provider(fake), OLD)

    assert token.refresh_token == OLD
    assert token.expires_at is None


def test_secret_and_scope_are_sent_when_configured(fake):
    fake.route("/token", Reply(200, {"access_token": "at"}))
    provider = make_provider(fake, client_secret="sec", scopes=("read", "write"))

    refresh(provider, OLD)

    form = fake.seen("/token")[0].form
    assert form["client_secret"] == "sec"
    assert form["scope"] == "read write"


def test_invalid_grant_is_a_flow_error_with_the_code(fake):
    fake.route("/token", Reply(400, {"error": "invalid_grant"}))

    with pytest.raises(FlowError) as info:
        refresh(make_provider(fake), OLD)

    assert type(info.value) is FlowError
    assert info.value.error == "invalid_grant"
    assert OLD not in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [Reply(503, {"error": "temporarily_unavailable"}), Reply(close=True)],
)
def test_outage_is_transient(fake, reply):
    fake.route("/token", reply)

    with pytest.raises(TransientError) as info:
        refresh(make_provider(fake), OLD)

    assert OLD not in str(info.value)


def test_answer_without_access_token_is_refused(fake):
    fake.route("/token", Reply(200, {"refresh_token": NEW}))

    with pytest.raises(FlowError, match="without an access_token"):
        refresh(make_provider(fake), OLD)


def test_insecure_token_url_is_refused():
    provider = Provider(client_id="cli", token_url="http://id.example/token")

    with pytest.raises(ConfigError, match="token_url"):
        refresh(provider, OLD)
