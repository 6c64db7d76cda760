"""git's credential-helper wire format: parse a request, write an answer.

Follows git-credential(1) "INPUT/OUTPUT FORMAT": ``key=value`` lines ended by a
blank line or end of input; ``key[]`` keys are ordered lists that an empty
value resets.
"""

from helper.errors import ProtocolError
from helper.redact import redact

# typing.TYPE_CHECKING without importing typing: every git command loads this.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ACTIONS", "Credential", "breaks_a_line", "format_answer", "parse"]

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
# What git percent-encodes when it turns a credential into a URL for its
# config look-up (URL_UNSAFE_CHARS in git's strbuf.c), besides control and
# non-ASCII bytes: a user name "bob@corp" must not end the authority early.
_URL_UNSAFE = frozenset(" <>\"%{}|\\^`:?#[]@!$&'()*+,;=")


class Credential:
    """One request as git (or any caller) sent it; secrets hidden from repr.

    A plain class: ``dataclasses`` costs more start-up time than a cache hit.
    """

    protocol: str
    host: str
    path: str
    username: str
    password: str
    password_expiry_utc: str
    oauth_refresh_token: str
    authtype: str
    credential: str
    ephemeral: str
    client_id: str
    scope: str

    def __init__(self, **values: str) -> None:
        for key in _SCALARS:
            setattr(self, key, values.pop(key, ""))
        if values:
            raise TypeError(f"unknown credential attributes: {sorted(values)}")

        self.capability: list[str] = []
        self.wwwauth: list[str] = []
        self.state: list[str] = []

    def __repr__(self) -> str:
        shown = redact({k: getattr(self, k) for k in _SCALARS if getattr(self, k)})
        return f"Credential({shown!r})"

    @property
    def url(self) -> str:
        """The request as git spells it for ``credential.<url>`` config look-up.

        As git's credential_format: the username (if any) and the path are
        percent-encoded, so ``credential.https://bob@host.*`` applies to bob
        and a stray ``%`` in a path cannot break the look-up. No password.
        """
        user = _encode(self.username, slash=True) + "@" if self.username else ""
        return f"{self.protocol}://{user}{self.host}/{_encode(self.path)}"

    def with_username(self, username: str) -> "Credential":
        """A copy of this request for *username*."""
        copy = Credential(**{k: getattr(self, k) for k in _SCALARS})
        copy.username = username
        copy.capability, copy.wwwauth, copy.state = (
            list(self.capability),
            list(self.wwwauth),
            list(self.state),
        )
        return copy

    def has_capability(self, name: str) -> bool:
        """True when the caller announced ``capability[]=name`` (git 2.46+)."""
        return name in self.capability


def parse(lines: "Iterable[str]") -> Credential:
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
        if "\0" in line:
            # git-credential(1): values never contain NUL; a NUL would also
            # cut paths and command lines short further down.
            raise ProtocolError("invalid credential line: NUL byte")

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
    elif key == "protocol":
        # A URL scheme is case-insensitive (RFC 3986 §3.1): HTTPS names the
        # same records as https.
        cred.protocol = value.lower()
    elif key in _SCALARS:
        setattr(cred, key, value)


def _assign_url(cred: Credential, url: str) -> None:
    # git-credential(1): "url" is split into its parts, as if each were sent.
    # Imported here: urllib.parse is slow to load and git never sends "url".
    # As git's credential_from_url: the host is what stands between "@" and
    # "/", port and IPv6 brackets included, so it matches what git sends.
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        # Such as an unclosed IPv6 bracket; the URL itself may hold a password.
        raise ProtocolError("url is not a valid URL") from None
    if not parts.scheme:
        raise ProtocolError("url has no scheme")
    userinfo, _, host = parts.netloc.rpartition("@")
    cred.protocol = parts.scheme
    cred.host = unquote(host, errors="surrogateescape")
    if userinfo:
        cred.username = unquote(userinfo.partition(":")[0], errors="surrogateescape")
    cred.path = unquote(parts.path.lstrip("/"), errors="surrogateescape")
    # As git's check_url_component: %0A or %00 must not smuggle a line break
    # or NUL into a value.
    for part, value in (
        ("host", cred.host),
        ("user", cred.username),
        ("path", cred.path),
    ):
        if breaks_a_line(value):
            raise ProtocolError(f"url holds CR, LF or NUL in its {part}")


def breaks_a_line(value: str) -> bool:
    """Whether *value* holds CR, LF or NUL: it could never be written as one line."""
    return any(ch in value for ch in _FORBIDDEN)


def format_answer(pairs: "Iterable[tuple[str, str]]") -> str:
    """Render ``key=value`` lines; refuse any CR, LF or NUL in keys or values."""
    out = []
    for key, value in pairs:
        if breaks_a_line(key) or breaks_a_line(value):
            raise ProtocolError(f"refusing to write {key!r}: value has CR, LF or NUL")

        out.append(f"{key}={value}\n")
    return "".join(out)


def _encode(text: str, slash: bool = False) -> str:
    """Percent-encode *text* as git does (and ``/`` too, with *slash*)."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        unsafe = byte <= 0x1F or byte >= 0x7F or char in _URL_UNSAFE
        out.append(f"%{byte:02X}" if unsafe or (slash and char == "/") else char)
    return "".join(out)
