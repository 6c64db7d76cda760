"""Records sealed with a key kept in the OS keyring.

The keyring holds only a 32-byte key per record; the record itself stays a
file, encrypted with AES-GCM. So any token size works in every keyring
(Windows Credential Manager holds 2,560 bytes an entry), the file layout and
locking are the same for both stores, and ``status`` never unlocks anything.
Every keyring call is bounded in time: a hung D-Bus must not hang git.
"""

import base64
import os
from collections.abc import Callable
from typing import TypeVar

from helper import bounded, logs, timeouts
from helper.errors import StoreError

__all__ = ["TIMEOUT_ENV", "KeyringAbsent", "forget", "probe", "seal", "unseal"]

log = logs.get(__name__)

SERVICE = "oauth-helper"
TIMEOUT_ENV = "OAUTH_HELPER_KEYRING_TIMEOUT"
T = TypeVar("T")

# Set once a call timed out: its thread may still hold the keyring (and
# D-Bus) busy, so later calls in this process fail at once instead of each
# waiting out the timeout again.
_hung: list[str] = []
# keyring's own messages run to several sentences; one line names the cause.
_HINTS = {
    "NoKeyringError": "no keyring backend is available",
    "InitError": "cannot open the keyring's collection",
    "KeyringLocked": "the keyring is locked",
}


class KeyringAbsent(StoreError):
    """No keyring backend at all (no D-Bus, no Secret Service): not soon fixed."""


def _bounded(call: Callable[[], T], what: str) -> T:
    if _hung:
        raise StoreError(_hung[0])
    limit = timeouts.from_env(TIMEOUT_ENV, 10)
    try:
        return bounded.within(call, limit)
    except TimeoutError:
        _hung.append(f"the keyring did not answer within {limit:g} s")
        raise StoreError(_hung[0]) from None
    except Exception as exc:
        raise _failure(exc, what) from None


def _failure(error: object, what: str) -> StoreError:
    if isinstance(error, StoreError):
        return error
    name = type(error).__name__
    message = _HINTS.get(name, f"the keyring failed to {what} ({name})")
    return KeyringAbsent(message) if name == "NoKeyringError" else StoreError(message)


def probe() -> str:
    """Name of the usable keyring backend; StoreError when there is none."""

    def check() -> str:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring):
            raise KeyringAbsent(_HINTS["NoKeyringError"])
        backend.get_password(SERVICE, "probe")
        return type(backend).__module__

    return _bounded(check, "answer")


def _key(name: str, create: bool) -> bytes | None:
    # One bounded call reads (and, for sealing, creates) the key: a slow
    # keyring then costs at most one timeout per record.
    def fetch() -> bytes | None:
        import keyring

        value = keyring.get_password(SERVICE, name)
        if value or not create:
            return base64.b64decode(value) if value else None
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = AESGCM.generate_key(bit_length=256)
        keyring.set_password(SERVICE, name, base64.b64encode(key).decode())
        return key

    return _bounded(fetch, "save a key" if create else "read a key")


def seal(name: str, plaintext: bytes) -> str:
    """Encrypt *plaintext* under the record's key, creating the key if needed."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = _key(name, create=True)
    if key is None:  # only a backend that drops what it was given
        raise StoreError("the keyring did not keep the record's key")
    nonce = os.urandom(12)
    # The record's name is the associated data: a blob copied under another
    # record's name does not decrypt.
    blob = nonce + AESGCM(key).encrypt(nonce, plaintext, name.encode())
    return base64.b64encode(blob).decode()


def unseal(name: str, sealed: str) -> bytes:
    """Decrypt a sealed blob; StoreError when the key is gone or does not fit."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = _key(name, create=False)
    if key is None:
        raise StoreError("the record's key is missing from the keyring")
    try:
        blob = base64.b64decode(sealed)
        return AESGCM(key).decrypt(blob[:12], blob[12:], name.encode())
    except (InvalidTag, ValueError):
        raise StoreError("the record does not match its keyring key") from None


def forget(name: str) -> None:
    """Delete the record's key from the keyring, if it is there."""

    def delete() -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        try:
            keyring.delete_password(SERVICE, name)
        except PasswordDeleteError:
            log.debug("no keyring key to delete")

    _bounded(delete, "delete a key")
