"""git's credential-helper wire format: parse a request, write an answer.

Follows git-credential(1) "INPUT/OUTPUT FORMAT": ``key=value`` lines ended by a
blank line or end of input; ``key[]`` keys are ordered lists that an empty
value resets.
"""

import dataclasses
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from helper.errors import ProtocolError

__all__ = ["ACTIONS", "Credential", "format_answer", "parse"]

ACTIONS = frozenset({"get", "store", "erase"})

_SCALARS = (
    "protocol",
    "host",
    "path",
    "username",
    "password",
    "password_expiry_utc",
    "oauth_refresh_token",
    "authtype",
    "credential",
    "ephemeral",
    "client_id",
    "scope",
)
_LISTS = {"capability[]": "capability", "wwwauth[]": "wwwauth", "state[]": "state"}
_FORBIDDEN = ("\r", "\n", "\0")


@dataclasses.dataclass
class Credential:
    """One request as git (or any caller) sent it; secrets hidden from repr."""

    protocol: str = ""
    host: str = ""
    path: str = ""
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    password_expiry_utc: str = ""
    oauth_refresh_token: str = dataclasses.field(default="", repr=False)
    authtype: str = ""
    credential: str = dataclasses.field(default="", repr=False)
    ephemeral: str = ""
    client_id: str = ""
    scope: str = ""
    capability: list[str] = dataclasses.field(default_factory=list)
    wwwauth: list[str] = dataclasses.field(default_factory=list)
    state: list[str] = dataclasses.field(default_factory=list)

    @property
    def url(self) -> str:
        """The request as a URL (no credentials), for settings look-up."""
        path = f"/{self.path}" if self.path else "/"
        return f"{self.protocol}://{self.host}{path}"

    def has_capability(self, name: str) -> bool:
        """True when the caller announced ``capability[]=name`` (git 2.46+)."""
        return name in self.capability


def parse(lines: Iterable[str]) -> Credential:
    """Read attributes up to the first blank line; ignore keys we do not know."""
    cred = Credential()
    for raw in lines:
        line = raw.rstrip("\n").removesuffix("\r")
        if not line:
            break

        key, sep, value = line.partition("=")
        if not sep:
            # git itself rejects such a line; the line may hold a secret, so
            # the message names only its position in the protocol.
            raise ProtocolError("invalid credential line: expected key=value")

        _assign(cred, key, value)
    return cred


def _assign(cred: Credential, key: str, value: str) -> None:
    if key in _LISTS:
        items: list[str] = getattr(cred, _LISTS[key])
        if value:
            items.append(value)
        else:
            items.clear()
    elif key == "url":
        _assign_url(cred, value)
    elif key in _SCALARS:
        setattr(cred, key, value)


def _assign_url(cred: Credential, url: str) -> None:
    # git-credential(1): "url" is split into its parts, as if each were sent.
    parts = urlsplit(url)
    cred.protocol = parts.scheme
    cred.host = parts.hostname or ""
    if parts.port is not None:
        cred.host = f"{cred.host}:{parts.port}"
    if parts.username:
        cred.username = unquote(parts.username)
    cred.path = unquote(parts.path.lstrip("/"))


def format_answer(pairs: Iterable[tuple[str, str]]) -> str:
    """Render ``key=value`` lines; refuse any CR, LF or NUL in keys or values."""
    out = []
    for key, value in pairs:
        if any(ch in key or ch in value for ch in _FORBIDDEN):
            raise ProtocolError(f"refusing to write {key!r}: value has CR, LF or NUL")

        out.append(f"{key}={value}\n")
    return "".join(out)
