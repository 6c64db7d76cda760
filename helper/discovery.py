"""Authorization server metadata: OpenID Connect Discovery 1.0 and RFC 8414,
validated against the issuer asked for and cached on disk for a day.
"""

import hashlib
import json
import logging
import os
import pathlib
import sys
import time
import urllib.parse
from typing import Any

import requests

from helper import http
from helper.errors import ConfigError, HelperError
from helper.paths import xdg_home
from helper.store import files

__all__ = ["CACHE_LIFETIME", "cache_dir", "discover"]

log = logging.getLogger(__name__)

CACHE_LIFETIME = 24 * 3600
_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
)


class _NotHere(Exception):
    """This well-known URL has no usable document; try the next one."""


def cache_dir() -> pathlib.Path:
    """Where discovery documents are cached (honours XDG_CACHE_HOME)."""
    if sys.platform in ("win32", "darwin"):
        import platformdirs

        base = platformdirs.user_cache_dir("oauth-helper")
    else:
        base = os.path.join(xdg_home("XDG_CACHE_HOME", ".cache"), "oauth-helper")
    return pathlib.Path(base) / "discovery"


def discover(issuer: str, url: str = "") -> dict[str, Any]:
    """The metadata document of *issuer*, from the cache or the network.

    *url* is a metadata URL the provider documents; it is tried first.
    """
    _require_plain_issuer(issuer)
    http.require_secure(issuer, "issuer")
    if url:
        http.require_secure(url, "discovery_url")
    cached = _read_cache(issuer)
    if cached is not None:
        return cached

    document = _fetch_first(issuer, url)
    _write_cache(issuer, document)
    return document


def _require_plain_issuer(issuer: str) -> None:
    # RFC 8414 §2: an issuer has no query or fragment; user info has no place
    # in it either, and none of them may reach a message.
    try:
        parts = urllib.parse.urlsplit(issuer)
    except ValueError:  # an unclosed "["
        raise ConfigError("issuer is not a URL") from None
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError(
            f"issuer must be a URL without user info, query or fragment "
            f"(RFC 8414 §2), got {http.shown(issuer)!r}"
        )


def well_known_urls(issuer: str) -> list[str]:
    """Candidate metadata URLs for *issuer*, in the order they are tried."""
    base = issuer.rstrip("/")
    parts = urllib.parse.urlsplit(base)
    # OpenID Discovery §4 appends to the issuer; RFC 8414 §3.1 inserts the
    # well-known segment between host and path. Providers differ, so try both.
    origin = f"{parts.scheme}://{parts.netloc}"
    urls = [
        f"{base}/.well-known/openid-configuration",
        f"{origin}/.well-known/oauth-authorization-server{parts.path}",
        f"{base}/.well-known/oauth-authorization-server",
    ]
    return list(dict.fromkeys(urls))


def _fetch_first(issuer: str, url: str) -> dict[str, Any]:
    # The documented URL first, then the well-known ones, each once.
    urls = dict.fromkeys(
        [url, *well_known_urls(issuer)] if url else well_known_urls(issuer)
    )
    reasons = []
    with http.session() as session:
        for candidate in urls:
            try:
                return _fetch(session, issuer, candidate)
            except _NotHere as exc:
                reasons.append(f"{http.shown(candidate)}: {exc}")

    raise ConfigError(
        f"no OAuth metadata for {issuer} ({'; '.join(reasons)}); "
        "set auth_url and token_url instead"
    )


def _fetch(session: requests.Session, issuer: str, url: str) -> dict[str, Any]:
    try:
        response = session.get(url, headers={"Accept": "application/json"})
    except (requests.RequestException, ValueError) as exc:  # ValueError: urllib3
        # Unreachable host: the other well-known URLs would fail the same way.
        raise ConfigError(
            f"cannot fetch {http.shown(url)}: {type(exc).__name__}; "
            "check the network and issuer"
        ) from None
    if response.status_code != 200:
        raise _NotHere(f"HTTP {response.status_code}")

    try:
        document = response.json()
    except ValueError:
        raise _NotHere("not JSON") from None
    if not isinstance(document, dict):
        raise _NotHere("not a JSON object")

    _validate(issuer, url, document)
    return document


def _validate(issuer: str, url: str, document: dict[str, Any]) -> None:
    # OpenID Discovery §4.3, RFC 8414 §3.3: the issuer must match exactly, or
    # an attacker's document could send our tokens to its own endpoints.
    if document.get("issuer") != issuer:
        raise ConfigError(
            f"{http.shown(url)} names issuer {str(document.get('issuer'))[:100]!r}, "
            f"expected {issuer!r}"
        )

    for key in _ENDPOINTS:
        value = document.get(key)
        if value is not None:
            http.require_secure(str(value), f"{key} in {http.shown(url)}")


def _cache_path(issuer: str) -> pathlib.Path:
    digest = hashlib.sha256(issuer.encode()).hexdigest()[:32]
    return cache_dir() / f"{digest}.json"


def _read_cache(issuer: str) -> dict[str, Any] | None:
    path = _cache_path(issuer)
    try:
        if time.time() - path.lstat().st_mtime > CACHE_LIFETIME:
            return None
        # Read as the store reads records: no link followed, no FIFO waited
        # on, nothing larger than any answer the network could have given.
        raw = files.read_bytes(str(path), limit=http.BODY_LIMIT)
        document = json.loads(raw or b"")
    except (OSError, ValueError, HelperError, files.NotARecord):
        return None

    # A stale or tampered file is simply refetched.
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        return None
    return document


def _write_cache(issuer: str, document: dict[str, Any]) -> None:
    path = _cache_path(issuer)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        files.write_atomic(str(path), json.dumps(document))
    except (OSError, HelperError) as exc:
        # The cache only saves a round trip: never fail a login over it.
        log.warning("cannot cache discovery document at %s: %s", path, exc)
