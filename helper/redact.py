"""Masking of secrets before anything reaches a log line, a repr or a message."""

# typing.TYPE_CHECKING without importing typing: reprs load this on every run.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MASK", "SECRET_KEYS", "redact"]

# Fixed list, compared case-insensitively: wire names from git's credential
# protocol and RFC 6749 / 7636 / 8628.
SECRET_KEYS = frozenset(
    {
        "password",
        "access_token",
        "refresh_token",
        "id_token",
        "oauth_refresh_token",
        "code",
        "code_verifier",
        "device_code",
        "client_secret",
        "authorization",
        "credential",
        "token",
        "msal_cache",
    }
)
MASK = "[secure]"


def redact(values: "Mapping[str, object]") -> dict[str, object]:
    """Return a copy of *values* with every secret-bearing key masked."""
    return {
        key: MASK if key.lower().rstrip("[]") in SECRET_KEYS else value
        for key, value in values.items()
    }
