"""The record: one stored credential, its key, and its on-disk text form.

Records are written in git's own ``key=value`` line format, so a record never
needs a JSON parser on the cache-hit path, and every value is checked for CR,
LF and NUL on the way out exactly like a protocol answer.
"""

import time

try:
    # The built-in SHA-256 loads in microseconds; hashlib loads OpenSSL, which
    # costs a tenth of a cache hit. (CPython 3.12 renamed it to _sha2.)
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the interpreter
    from hashlib import sha256 as _sha256

from helper.errors import StoreError
from helper.protocol import format_answer
from helper.redact import redact

__all__ = [
    "KEY_FIELDS",
    "SECRET_FIELDS",
    "Record",
    "host_hash",
    "parse_record",
    "token_digest",
]

MAGIC = "oauth-helper-record"
VERSION = "1"
# The key: a record is found again only for the same values of all of these.
KEY_FIELDS = ("protocol", "host", "path", "username", "client_id", "scope")
# msal_cache: MSAL's serialized token cache (Entra ID path), refresh token inside.
SECRET_FIELDS = ("password", "oauth_refresh_token", "credential", "msal_cache")
# refreshable: "1" when a refresh token is kept, so status can say so without
# unsealing anything. current and retired: digests of the access token this
# record holds and of those it held before, so that git storing one of them
# is known for an echo without unlocking the keyring.
META_FIELDS = (
    "password_expiry_utc",
    "authtype",
    "origin",
    "kind",
    "updated",
    "refreshable",
    "current",
    "retired",
)
FIELDS = KEY_FIELDS + META_FIELDS + SECRET_FIELDS
# Unix times: a damaged one must make the record unreadable, not crash expiry().
_NUMERIC_FIELDS = ("password_expiry_utc", "updated")
# Retired tokens remembered: a git process holding an older one than these
# has long finished (tokens live minutes to hours; each refresh retires one).
_RETIRED_KEPT = 4


class Record:
    """A stored credential; ``origin`` is ``login`` (we obtained it) or ``store``."""

    protocol: str
    host: str
    path: str
    username: str
    client_id: str
    scope: str
    password_expiry_utc: str
    authtype: str
    origin: str
    kind: str
    updated: str
    refreshable: str
    current: str
    retired: str
    password: str
    oauth_refresh_token: str
    credential: str
    msal_cache: str

    def __init__(self, **values: str) -> None:
        for field in FIELDS:
            setattr(self, field, values.pop(field, ""))
        # The secrets' keyring-sealed form, when they are not stored in clear.
        self.sealed = values.pop("sealed", "")
        if values:
            raise TypeError(f"unknown record fields: {sorted(values)}")

    def __repr__(self) -> str:
        shown = redact({f: getattr(self, f) for f in FIELDS if getattr(self, f)})
        return f"Record({shown!r})"

    @property
    def key_hash(self) -> str:
        """Hash of the key fields: the record's file name, never the key itself."""
        return _digest("\0".join(getattr(self, f) for f in KEY_FIELDS))

    def expiry(self) -> int | None:
        """Expiry as a Unix time, or None when the credential does not expire."""
        return int(self.password_expiry_utc) if self.password_expiry_utc else None

    def is_fresh(self, margin: int, now: float | None = None) -> bool:
        """True when there is a secret to answer and it outlives *margin* seconds."""
        # A record stored with capability[]=authtype (git 2.46+) may carry its
        # secret in ``credential`` alone, with no password.
        has_secret = bool(self.password or self.credential)
        return has_secret and self.outlives(margin, now)

    def outlives(self, margin: int, now: float | None = None) -> bool:
        """True when the credential does not expire within *margin* seconds."""
        expiry = self.expiry()
        now = time.time() if now is None else now
        return expiry is None or expiry - self.margin(margin) > now

    def margin(self, wanted: int) -> int:
        """The safety margin for this token: *wanted*, but at most half its life.

        A provider that issues 30-second tokens would otherwise have every
        token count as expired on arrival, and be asked for a new one on
        every call.
        """
        expiry = self.expiry()
        if expiry is None or not self.updated.isdigit():
            return wanted
        return max(0, min(wanted, (expiry - int(self.updated)) // 2))

    def secrets_text(self) -> str:
        """The secret fields alone, in record line format."""
        return format_answer(_pairs(self, SECRET_FIELDS))

    def to_text(self, sealed: str = "") -> str:
        """The whole record; with *sealed*, secrets are replaced by that blob."""
        head = format_answer([(MAGIC, VERSION)])
        fields = KEY_FIELDS + META_FIELDS
        body = _pairs(self, fields if sealed else FIELDS)
        tail = [("sealed", sealed)] if sealed else []
        return head + format_answer(body + tail)

    def copy(self, **changes: str) -> "Record":
        """A copy with *changes* applied."""
        values = {f: getattr(self, f) for f in FIELDS}
        values.update(changes)
        return Record(**values)

    def replaced(self, **changes: str) -> "Record":
        """A copy with *changes*, its old access token remembered as retired."""
        new = self.copy(**changes)
        if self.password and new.password != self.password:
            kept = [token_digest(self.password), *self.retired.split(",")]
            new.retired = ",".join([d for d in kept if d][:_RETIRED_KEPT])
        return new

    def held_token(self, password: str) -> bool:
        """True when *password* is the access token this record holds or held."""
        if not password:
            return False
        digest = token_digest(password)
        return digest == self.current or digest in self.retired.split(",")


def _pairs(record: Record, fields: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(f, getattr(record, f)) for f in fields if getattr(record, f)]


def parse_record(text: str) -> Record:
    """Parse a record's text (secrets stay sealed when they were)."""
    lines = text.split("\n")
    if not lines or lines[0] != f"{MAGIC}={VERSION}" or lines[-1] != "":
        raise StoreError("record is not in the expected format")

    values: dict[str, str] = {}
    for line in lines[1:-1]:
        key, sep, value = line.partition("=")
        if not sep or (key not in FIELDS and key != "sealed"):
            raise StoreError("record has an unexpected line")
        values[key] = value
    for key in _NUMERIC_FIELDS:
        number = values.get(key) or "0"
        # isdigit() alone accepts digits int() refuses, such as "²".
        if not (number.isascii() and number.isdigit()):
            raise StoreError(f"record has a malformed {key}")
    return Record(**values)


def parse_secrets(text: str) -> dict[str, str]:
    """The secret fields of unsealed text, split as they were joined.

    Only LF separates lines: str.splitlines() would also split at characters
    a secret may hold (VT, FF, U+2028...), and let one value forge another.
    """
    lines = text.split("\n")
    if lines[-1] != "":
        raise StoreError("sealed secrets are not in the expected format")
    secrets: dict[str, str] = {}
    for line in lines[:-1]:
        key, sep, value = line.partition("=")
        if not sep or key not in SECRET_FIELDS:
            raise StoreError("sealed secrets hold an unexpected line")
        secrets[key] = value
    return secrets


def host_hash(protocol: str, host: str) -> str:
    """Name of the folder holding every record for one protocol and host."""
    return _digest(f"{protocol}://{host.lower()}")


def token_digest(token: str) -> str:
    """A digest that tells a token again without keeping it (a one-way hash)."""
    return _digest(f"token\0{token}")[:24]


def _digest(text: str) -> str:
    return str(_sha256(text.encode("utf-8", "surrogateescape")).hexdigest())[:40]
