"""helper.tokens and the token-response check every flow ends with."""

import pytest
from flows.fakeserver import FakeServer, Reply

from helper.errors import FlowError
from helper.flows._token import token_from
from helper.flows.refresh import refresh
from helper.providers import Provider
from helper.tokens import Token

NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("expires_in", "expires_at"),
    [
        (3600, NOW + 3600),
        ("3600", NOW + 3600),
        (59.9, NOW + 59),
        (1, NOW + 1),
        # Over before git could use it: as good as no lifetime.
        (0, None),
        (0.5, None),
        (None, None),
        ("abc", None),
        ("", None),
        (-5, None),
        (1e308, None),
        (True, None),
        ([1], None),
    ],
)
def test_expires_in_becomes_an_expiry_or_none(
    expires_in: object, expires_at: int | None
) -> None:
    token = Token.from_response(
        {"access_token": "at", "refresh_token": "rt", "expires_in": expires_in}, NOW
    )

    assert token.expires_at == expires_at
    assert token.refresh_token == "rt"  # an unusable expiry never costs it


@pytest.mark.parametrize("kind", [None, "Bearer", "bearer", "BEARER"])
def test_bearer_tokens_are_taken(kind: str | None) -> None:
    body = {"access_token": "at", "expires_in": 60}
    if kind is not None:
        body["token_type"] = kind

    assert token_from(body, "idp.test").access_token == "at"


@pytest.mark.parametrize("kind", ["mac", "DPoP", "N_A"])
def test_other_token_types_are_refused(kind: str) -> None:
    body = {"access_token": "secret-at", "token_type": kind}

    with pytest.raises(FlowError) as caught:
        token_from(body, "idp.test")

    assert "only Bearer tokens" in str(caught.value)
    assert "secret-at" not in str(caught.value)


HUGE = int("1" + "0" * 400)


@pytest.mark.parametrize("expires_in", [HUGE, -HUGE, float("inf"), float("nan")])
def test_expires_in_out_of_any_range_is_none(expires_in: object) -> None:
    token = Token.from_response({"access_token": "at", "expires_in": expires_in}, NOW)

    assert token.expires_at is None


@pytest.mark.parametrize("value", [{"a": 1}, ["rt"], 5, None, ""])
def test_a_refresh_token_that_is_not_a_string_is_absent(value: object) -> None:
    token = Token.from_response({"access_token": "at", "refresh_token": value}, NOW)

    assert token.refresh_token == ""


def test_a_scope_that_is_not_a_string_is_absent() -> None:
    token = Token.from_response({"access_token": "at", "scope": 5}, NOW)

    assert token.scope == ""


def test_an_empty_token_type_is_bearer() -> None:
    token = token_from({"access_token": "at", "token_type": ""}, "idp.test")

    assert (token.access_token, token.token_type) == ("at", "Bearer")


def test_a_refresh_answer_with_an_object_keeps_the_old_refresh_token() -> None:
    body = {"access_token": "at", "refresh_token": {"value": "x"}}
    with FakeServer() as fake:
        fake.route("/token", Reply(200, body))

        token = refresh(Provider(client_id="c", token_url=fake.url("/token")), "rt")

    assert (token.access_token, token.refresh_token) == ("at", "rt")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("access_token", "at-\ud800"),
        ("access_token", "at-\u00e9"),
        ("access_token", "at\r\nx"),
        ("access_token", "at\x1b[2J"),
        ("refresh_token", "rt-\udcff"),
        ("refresh_token", "rt\nx"),
    ],
)
def test_a_token_that_is_not_printable_ascii_is_refused(key: str, value: str) -> None:
    body = {"access_token": "at", "refresh_token": "rt", key: value}

    with pytest.raises(FlowError) as caught:
        token_from(body, "idp.test")

    assert str(caught.value) == f"idp.test issued a {key} that is not printable ASCII"
