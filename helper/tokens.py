"""The token: what a flow or a refresh returns (RFC 6749 §5.1)."""

import dataclasses
import time
from collections.abc import Mapping

__all__ = ["Token", "is_token_text", "lifetime"]

# Ten years: a longer lifetime is a server's way of saying "does not expire"
# (or a typo), and must not become a 300-digit expiry.
_LONGEST = 10 * 365 * 24 * 3600


@dataclasses.dataclass(frozen=True)
class Token:
    """An access token with what we need to reuse and refresh it."""

    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(default="", repr=False)
    expires_at: int | None = None
    scope: str = ""
    token_type: str = "Bearer"  # noqa: S105 (a type name, not a secret)
    id_token: str = dataclasses.field(default="", repr=False)

    @classmethod
    def from_response(
        cls, body: Mapping[str, object], now: float | None = None
    ) -> "Token":
        """Build from a token endpoint's JSON; ``expires_in`` becomes absolute."""
        now = time.time() if now is None else now
        seconds = lifetime(body.get("expires_in"))
        expires_at = None if seconds is None else int(now + seconds)
        return cls(
            access_token=str(body.get("access_token", "")),
            refresh_token=_text(body.get("refresh_token")),
            expires_at=expires_at,
            scope=_text(body.get("scope")),
            token_type=str(body.get("token_type") or "Bearer"),
            id_token=_text(body.get("id_token")),
        )


def _text(value: object) -> str:
    # A JSON object or number where a string belongs is no value at all, not
    # its Python repr: a refresh token of "{'a': 1}" would be stored and sent.
    return value if isinstance(value, str) else ""


def lifetime(expires_in: object) -> float | None:
    """Seconds from RFC 6749 §5.1 ``expires_in``; None when absent or unusable.

    An unusable value only costs the expiry: the token is then used until the
    server rejects it, and the response's refresh token is still kept.
    """
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
        return None
    try:
        seconds = float(expires_in)
    except (OverflowError, ValueError):
        # OverflowError: a JSON integer of hundreds of digits.
        return None
    # Under a second is no lifetime to plan by: the expiry would be over by
    # the time git read it, and git drops a credential that has expired.
    return seconds if 1 <= seconds <= _LONGEST else None


def is_token_text(value: str) -> bool:
    """Whether *value* is made of the characters a token may hold.

    RFC 6749 Appendix A.12 and A.17: access and refresh tokens are 1*VSCHAR,
    printable ASCII. Anything else (a line break, a lone surrogate from a
    JSON escape) could not travel as a password anyway.
    """
    return value.isascii() and value.isprintable()
