"""Keyring backends for tests, loaded through ``PYTHON_KEYRING_BACKEND``.

A subprocess gets ``PYTHONPATH=tests/store`` and, for instance,
``PYTHON_KEYRING_BACKEND=testkeyrings.HangingKeyring``: keyring then loads
this module instead of detecting a backend.
"""

import json
import os
import time

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class HangingKeyring(KeyringBackend):
    """Every call blocks, like a Secret Service that accepts and never answers."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        time.sleep(3600)
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        time.sleep(3600)

    def delete_password(self, service: str, username: str) -> None:
        time.sleep(3600)


class JsonFileKeyring(KeyringBackend):
    """A keyring kept in the JSON file named by TEST_KEYRING_FILE (tests only)."""

    priority = 1  # type: ignore[assignment]

    def _load(self) -> dict[str, str]:
        try:
            with open(os.environ["TEST_KEYRING_FILE"]) as stream:
                return dict(json.load(stream))
        except FileNotFoundError:
            return {}

    def _dump(self, entries: dict[str, str]) -> None:
        with open(os.environ["TEST_KEYRING_FILE"], "w") as stream:
            json.dump(entries, stream)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._load()
        entries[f"{service}/{username}"] = password
        self._dump(entries)

    def delete_password(self, service: str, username: str) -> None:
        entries = self._load()
        if entries.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError("no such entry")
        self._dump(entries)
