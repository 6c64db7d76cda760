"""Records sealed with a key kept in the OS keyring.

The keyring holds only a 32-byte key per record; the record itself stays a
file, encrypted with AES-GCM. So any token size works in every keyring
(Windows Credential Manager holds 2,560 bytes an entry), the file layout and
locking are the same for both stores, and ``status`` never unlocks anything.
Every keyring call is bounded in time: a hung D-Bus must not hang git.
"""

import base64
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from helper import logs
from helper.errors import StoreError

__all__ = ["KEYRING_TIMEOUT", "forget", "probe", "seal", "unseal"]

log = logs.get(__name__)

SERVICE = "oauth-helper"
KEYRING_TIMEOUT = float(os.environ.get("OAUTH_HELPER_KEYRING_TIMEOUT", "10"))
T = TypeVar("T")


def _bounded(call: Callable[[], T], what: str) -> T:
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except Exception as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="keyring", daemon=True)
    worker.start()
    worker.join(KEYRING_TIMEOUT)
    if worker.is_alive():
        raise StoreError(f"the keyring did not answer within {KEYRING_TIMEOUT:g} s")
    if "error" in box:
        error = box["error"]
        raise StoreError(f"the keyring failed to {what}: {type(error).__name__}")
    return box["value"]  # type: ignore[return-value]


def probe() -> str:
    """Name of the usable keyring backend; StoreError when there is none."""

    def check() -> str:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring):
            raise StoreError("no keyring backend")
        backend.get_password(SERVICE, "probe")
        return type(backend).__module__

    return _bounded(check, "answer")


def _get_key(name: str) -> bytes | None:
    import keyring

    value = _bounded(lambda: keyring.get_password(SERVICE, name), "read a key")
    return base64.b64decode(value) if value else None


def seal(name: str, plaintext: bytes) -> str:
    """Encrypt *plaintext* under the record's key, creating the key if needed."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = _get_key(name)
    if key is None:
        import keyring

        key = AESGCM.generate_key(bit_length=256)
        encoded = base64.b64encode(key).decode()
        _bounded(lambda: keyring.set_password(SERVICE, name, encoded), "save a key")
    nonce = os.urandom(12)
    blob = nonce + AESGCM(key).encrypt(nonce, plaintext, name.encode())
    return base64.b64encode(blob).decode()


def unseal(name: str, sealed: str) -> bytes:
    """Decrypt a sealed blob; StoreError when the key is gone or does not fit."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = _get_key(name)
    if key is None:
        raise StoreError("the record's key is missing from the keyring")
    try:
        blob = base64.b64decode(sealed)
        return AESGCM(key).decrypt(blob[:12], blob[12:], name.encode())
    except (InvalidTag, ValueError):
        raise StoreError("the record does not match its keyring key") from None


def forget(name: str) -> None:
    """Delete the record's key from the keyring, if it is there."""
    import keyring
    from keyring.errors import PasswordDeleteError

    def delete() -> None:
        try:
            keyring.delete_password(SERVICE, name)
        except PasswordDeleteError:
            log.debug("no keyring key to delete")

    _bounded(delete, "delete a key")
