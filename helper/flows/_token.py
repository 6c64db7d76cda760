"""The step every flow ends with: a token endpoint's JSON becomes a Token."""

from collections.abc import Mapping

from helper.errors import FlowError
from helper.tokens import Token, is_token_text

__all__ = ["token_from"]


def token_from(body: Mapping[str, object], host: str) -> Token:
    """A Token from a successful token response (RFC 6749 §5.1)."""
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise FlowError(f"{host} answered without an access_token")
    for key in ("access_token", "refresh_token"):
        value = body.get(key)
        if isinstance(value, str) and not is_token_text(value):
            raise FlowError(f"{host} issued a {key} that is not printable ASCII")
    # RFC 6749 §7.1: a client must not use a token whose type it does not
    # understand; sent as a bearer password, a MAC or DPoP token just fails.
    # An empty token_type is as good as none: Bearer, as Token assumes.
    kind = body.get("token_type")
    if kind not in (None, "") and str(kind).lower() != "bearer":
        raise FlowError(
            f"{host} issued a {str(kind)[:20]!r} token; only Bearer tokens can be "
            "used as a password"
        )

    return Token.from_response(body)
