"""helper.tokens and the token-response check every flow ends with."""

import pytest

from helper.errors import FlowError
from helper.flows._token import token_from
from helper.tokens import Token

NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("expires_in", "expires_at"),
    [
        (3600, NOW + 3600),
        ("3600", NOW + 3600),
        (59.9, NOW + 59),
        (0, NOW),
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
