"""Authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636 S256) through
the system browser and a loopback redirect (RFC 8252).
"""

import contextlib
import json
import logging
import os
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any

import requests
from oauthlib.oauth2 import OAuth2Error
from requests_oauthlib import OAuth2Session

from helper import http, logs, timeouts
from helper.browser import can_open_browser, open_url
from helper.errors import FlowError, TransientError
from helper.flows._token import token_from
from helper.loopback import Listener
from helper.providers import Provider
from helper.tokens import Token, lifetime

__all__ = ["login_browser"]

log = logs.get(__name__)


def _quiet(prefixes: tuple[str, ...]) -> None:
    """Hold every logger under *prefixes* at WARNING.

    oauthlib and requests-oauthlib log codes, verifiers and tokens at DEBUG.
    Each module logger gets its own level, so turning DEBUG on for the
    package (or the root) later still leaves them quiet.
    """
    names = [*prefixes, *logging.Logger.manager.loggerDict]
    for name in names:
        if name.startswith(prefixes):
            logging.getLogger(name).setLevel(logging.WARNING)


_quiet(("oauthlib", "requests_oauthlib"))

# Parameters the flow itself sets; auth_params must not override them.
_RESERVED = frozenset(
    {
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
)


def login_browser(
    provider: Provider, *, timeout: float = timeouts.SIGN_IN, login_hint: str = ""
) -> Token:
    """Sign in through the browser; the token, or FlowError."""
    http.require_secure(provider.auth_url, "auth_url")
    http.require_secure(provider.token_url, "token_url")
    # RFC 6749 §10.12: an unguessable state ties the redirect to this run.
    state = secrets.token_urlsafe(32)
    with Listener(state, provider.redirect_url, provider.redirect_ports) as listener:
        oauth = _session(provider, listener.redirect_uri)
        url = _authorization_url(oauth, provider, state, login_hint)
        _announce(provider, url)
        # A browser elsewhere (over SSH), or none, cannot come back to the
        # listener: the user may paste the address it ended on instead.
        paste = not open_url(url) or not can_open_browser()
        params = listener.wait(timeout, paste=paste)

    return _exchange(oauth, provider, _code(provider, params))


def _session(provider: Provider, redirect_uri: str) -> Any:
    oauth = OAuth2Session(
        provider.client_id,
        redirect_uri=redirect_uri,
        scope=list(provider.scopes) or None,
        pkce="S256",
    )
    http.configure(oauth)
    oauth.register_compliance_hook("access_token_response", _classify)
    return oauth


def _classify(response: requests.Response) -> requests.Response:
    # Before oauthlib parses it: 5xx and non-JSON become TransientError, an
    # RFC 6749 §5.2 error body a FlowError carrying its code.
    body = http.parse_json(response)
    response._content = json.dumps(_parseable(body)).encode()
    return response


def _parseable(body: dict[str, Any]) -> dict[str, Any]:
    """*body* without what oauthlib would crash on after the user signed in.

    oauthlib int()s expires_in ("abc": ValueError, 1e400: OverflowError) and
    splits scope as a string. An unusable expires_in is dropped, as Token
    drops it; a scope that is not a string (or list of strings) is absent,
    which RFC 6749 §5.1 reads as the scope requested.
    """
    body = dict(body)
    seconds = lifetime(body.pop("expires_in", None))
    if seconds is not None:
        body["expires_in"] = int(seconds)
    scope = body.get("scope")
    if not (isinstance(scope, str) or _strings(scope)):
        body.pop("scope", None)
    return body


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _authorization_url(
    oauth: Any, provider: Provider, state: str, login_hint: str
) -> str:
    extra = {k: v for k, v in provider.auth_params.items() if k not in _RESERVED}
    # The request's username as the provider's account hint (OpenID Connect
    # Core §3.1.2.1 login_hint; GitHub calls it "login"), where it takes one.
    if login_hint and provider.login_hint:
        extra.setdefault(provider.login_hint, login_hint)
    with _oauthlib_env(provider.auth_url):
        url, _ = oauth.authorization_url(provider.auth_url, state=state, **extra)
    return str(url)


def _announce(provider: Provider, url: str) -> None:
    # Always shown: the browser may not open, or may open somewhere unseen.
    # The URL carries the code challenge and state, never a secret.
    host = http.host_of(provider.auth_url)
    log.warning("open this URL to sign in to %s: %s", host, url)


def _code(provider: Provider, params: dict[str, str]) -> str:
    """The authorization code from the redirect, after RFC 9207 checks."""
    host = http.host_of(provider.auth_url)
    # RFC 9207 §2.4: a different iss means a mix-up attack; check it first.
    iss = params.get("iss")
    if iss is not None and provider.issuer and iss != provider.issuer:
        raise FlowError(
            f"the redirect came from issuer {iss[:100]!r}, expected "
            f"{provider.issuer!r}; sign-in aborted",
            "invalid_request",
        )
    if "error" in params:
        raise _authorization_error(host, params)

    return params["code"]


def _authorization_error(host: str, params: dict[str, str]) -> FlowError:
    # RFC 6749 §4.1.2.1; access_denied is usually the user clicking "cancel".
    error = " ".join(params["error"].split())[:100]
    description = " ".join(params.get("error_description", "").split())[:200]
    detail = f"{error}: {description}" if description else error
    return FlowError(f"sign-in to {host} failed: {detail}", error, description)


def _exchange(oauth: Any, provider: Provider, code: str) -> Token:
    """Trade the code and verifier for a token (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    host = http.host_of(provider.token_url)
    try:
        with _oauthlib_env(provider.token_url):
            body = oauth.fetch_token(
                provider.token_url,
                code=code,
                include_client_id=True,
                client_secret=provider.client_secret or None,
            )
    except requests.RequestException as exc:
        raise TransientError(
            f"cannot reach {host}: {type(exc).__name__}; check the network"
        ) from None
    except OAuth2Error as exc:
        raise _oauthlib_error(host, exc) from None
    return token_from(_wire_form(body), host)


def _wire_form(token: Any) -> dict[str, Any]:
    # oauthlib turns "scope" into a list; RFC 6749 §3.3 sends a string.
    body: dict[str, Any] = dict(token)
    if isinstance(body.get("scope"), list | tuple):
        body["scope"] = " ".join(body["scope"])
    return body


def _oauthlib_error(host: str, exc: Any) -> FlowError:
    error = str(getattr(exc, "error", "") or "")
    description = " ".join(str(getattr(exc, "description", "") or "").split())
    return FlowError(
        f"{host} refused the code: {error}: {description[:200]}", error, description
    )


@contextlib.contextmanager
def _oauthlib_env(url: str) -> Iterator[None]:
    """oauthlib reads two switches from the environment; set them narrowly.

    OAUTHLIB_INSECURE_TRANSPORT only for an http URL, which require_secure
    has limited to loopback. OAUTHLIB_RELAX_TOKEN_SCOPE because RFC 6749 §3.3
    lets a server grant another scope, where oauthlib would raise instead.
    """
    wanted = {"OAUTHLIB_RELAX_TOKEN_SCOPE": "1"}
    if urllib.parse.urlsplit(url).scheme == "http":
        wanted["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
