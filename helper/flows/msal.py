"""Microsoft Entra ID through MSAL: browser and device sign-in, silent refresh.

MSAL's own token cache (refresh token, account, ID token) travels as one
secret string that the caller keeps in the record; msal is imported only here.
"""

import contextlib
import dataclasses
import json
import logging
import secrets
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from typing import Any

import requests

from helper import http, logs, timeouts
from helper.browser import can_open_browser, open_url
from helper.errors import ConfigError, FlowError, TransientError
from helper.flows.device import check_grant
from helper.loopback import Listener
from helper.providers import Provider
from helper.tokens import Token, is_token_text

__all__ = ["Signed", "login_browser", "login_device", "refresh"]

# Our lazy loggers: the first line logged attaches the stderr handler.
log = logs.get(__name__)
# msal logs requests and cache events at DEBUG/INFO; keep it out of a debug run.
logging.getLogger("msal").setLevel(logging.WARNING)

# MSAL adds these to every request and raises when a caller passes them.
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
# Entra's device flow answers a refusal with its own code (RFC 8628 says
# access_denied); git's quit=1 keys on the RFC one.
_DENIED = frozenset({"access_denied", "authorization_declined"})


@dataclasses.dataclass(frozen=True)
class Signed:
    """A token and MSAL's serialized cache after the request that gave it."""

    token: Token
    cache: str = dataclasses.field(repr=False)


def _authority(provider: Provider) -> str:
    return provider.authority.rstrip("/")


def login_browser(
    provider: Provider,
    cache: str = "",
    *,
    timeout: float = timeouts.SIGN_IN,
    login_hint: str = "",
) -> Signed:
    """Sign in through the browser: MSAL's auth code flow, our loopback listener."""
    app, tokens = _application(provider, cache)
    # RFC 6749 §10.12; MSAL checks it again, with the nonce in the ID token.
    state = secrets.token_urlsafe(32)
    listener = Listener(state, provider.redirect_url, provider.redirect_ports)
    with listener, _msal_errors(provider):
        flow = _initiate(app, provider, listener.redirect_uri, state, login_hint)
        log.warning(
            "open this URL to sign in to %s: %s", _host(provider), flow["auth_uri"]
        )
        # As in helper.flows.pkce: a browser that cannot come back may be
        # answered with a paste of the address it ended on.
        paste = not open_url(flow["auth_uri"]) or not can_open_browser()
        params = listener.wait(timeout, paste=paste)
    _check_issuer(provider, params)
    with _msal_errors(provider):
        result = app.acquire_token_by_auth_code_flow(flow, params)
    return _signed(provider, result, tokens)


def _initiate(
    app: Any, provider: Provider, redirect_uri: str, state: str, login_hint: str
) -> dict[str, Any]:
    # MSAL always asks for offline_access, and a refresh sends it again; an
    # OpenID provider grants it only with prompt=consent (OpenID Connect Core
    # §11), so a refresh would fail with invalid_scope. Entra needs no prompt.
    # TODO(loopback): ask for response_mode=form_post once helper.loopback
    # accepts a POSTed response. Until then the code comes back in the query
    # (RFC 6749 §4.1.2), which MSAL accepts but warns about on every login
    # (RFC 9700 §4.3.1: a code in a URL can leak). PKCE binds the code to this
    # process and the listener's page sends no Referer, so only that warning
    # is silenced, here.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "response_mode='form_post' is recommended", UserWarning
        )
        flow: dict[str, Any] = app.initiate_auth_code_flow(
            _scopes(provider),
            redirect_uri=redirect_uri,
            state=state,
            login_hint=login_hint or None,
            prompt=None if _is_microsoft(_host(provider)) else "consent",
        )
    return flow


def login_device(
    provider: Provider, cache: str = "", *, timeout: float = timeouts.SIGN_IN
) -> Signed:
    """Sign in with a user code entered on another device (RFC 8628)."""
    app, tokens = _application(provider, cache)
    with _msal_errors(provider):
        flow = app.initiate_device_flow(scopes=_scopes(provider))
    if not flow.get("user_code"):
        raise _refusal(provider, flow, "the device authorization request")
    check_grant(flow, _host(provider))
    _announce_device(provider, flow)

    # MSAL polls until flow["expires_at"] (its documented way to stop early).
    flow["expires_at"] = min(float(flow["expires_at"]), time.time() + timeout)
    with _msal_errors(provider):
        result = app.acquire_token_by_device_flow(flow)
    if result.get("error") in ("authorization_pending", "slow_down"):
        raise FlowError(
            f"timed out waiting for sign-in at {flow['verification_uri']}; "
            "run the command again"
        )
    return _signed(provider, result, tokens)


def refresh(provider: Provider, cache: str) -> Signed | None:
    """A new access token from the cached refresh token; None: sign in again."""
    app, tokens = _application(provider, cache)
    accounts = app.get_accounts()
    if not accounts:
        return None

    # Our record, not MSAL's clock, decided the token is stale: force it.
    log.debug("refreshing silently through MSAL at %s", _host(provider))
    with _msal_errors(provider):
        result = app.acquire_token_silent_with_error(
            _scopes(provider), accounts[0], force_refresh=True
        )
    if result is None or "access_token" not in result:
        error = (result or {}).get("error") or "no refresh token in the cache"
        log.info("the provider refused the silent refresh (%s)", error)
        return None
    return _signed(provider, result, tokens)


def _application(provider: Provider, cache: str) -> tuple[Any, Any]:
    import msal

    authority = _authority(provider)
    parts = urllib.parse.urlsplit(authority)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"oauthAuthority must be an https URL, got {authority!r}")
    tokens = msal.SerializableTokenCache()
    if cache:
        tokens.deserialize(cache)

    kind = "authority" if _is_microsoft(parts.hostname) else "oidc_authority"
    with _msal_errors(provider, setup=True):
        app = msal.PublicClientApplication(
            provider.client_id,
            token_cache=tokens,
            # Our session: the CA bundle rules and certificate checks of
            # helper.http, a timeout, no ~/.netrc.
            http_client=http.session(),
            **{kind: authority},
        )
    return app, tokens


def _is_microsoft(host: str) -> bool:
    # Entra's own login hosts (public and national clouds, B2C, CIAM) take
    # authority=; any other OpenID issuer takes oidc_authority=.
    from msal import authority

    name = host.rpartition(":")[0] if host.count(":") == 1 else host
    b2c = tuple(f".{h}" for h in authority.WELL_KNOWN_B2C_HOSTS)
    return (
        name.lower() in authority.WELL_KNOWN_AUTHORITY_HOSTS
        or name.lower().endswith(b2c)
    )


def _scopes(provider: Provider) -> list[str]:
    return [s for s in provider.scopes if s not in _RESERVED_SCOPES]


def _check_issuer(provider: Provider, params: dict[str, str]) -> None:
    # RFC 9207 §2.4: a redirect from another issuer means a mix-up attack. An
    # Entra issuer names the tenant ID, not the authority as configured: only
    # an oidc_authority can be compared.
    iss = params.get("iss")
    authority = _authority(provider)
    if iss is None or iss.rstrip("/") == authority or _is_microsoft(_host(provider)):
        return
    raise FlowError(
        f"the redirect came from issuer {iss[:100]!r}, expected "
        f"{authority!r}; sign-in aborted",
        "invalid_request",
    )


def _signed(provider: Provider, result: dict[str, Any], tokens: Any) -> Signed:
    if not isinstance(result.get("access_token"), str) or not result["access_token"]:
        raise _refusal(provider, result, "sign-in")
    if not is_token_text(result["access_token"]):
        raise FlowError(
            f"{_host(provider)} issued an access_token that is not printable ASCII"
        )

    token = Token(
        access_token=result["access_token"],
        expires_at=_expires_at(result.get("expires_in")),
        scope=str(result.get("scope") or ""),
        token_type=str(result.get("token_type") or "Bearer"),
    )
    return Signed(token, _compact(tokens.serialize()))


def _expires_at(expires_in: object) -> int | None:
    try:
        return int(time.time() + float(str(expires_in)))
    except ValueError:
        return None


def _compact(serialized: str) -> str:
    # MSAL writes indented JSON; a record value must be one line (no LF).
    return json.dumps(json.loads(serialized), separators=(",", ":"), sort_keys=True)


def _refusal(provider: Provider, result: dict[str, Any], what: str) -> FlowError:
    error = _one_line(result.get("error") or "no access_token", 100)
    description = _one_line(result.get("error_description") or "", 200)
    code = "access_denied" if error in _DENIED else error
    detail = f"{error}: {description}" if description else error
    return FlowError(f"{_host(provider)} refused {what}: {detail}", code, description)


def _one_line(text: object, limit: int) -> str:
    return " ".join(str(text).split())[:limit]


@contextlib.contextmanager
def _msal_errors(provider: Provider, setup: bool = False) -> Iterator[None]:
    """Turn what MSAL raises into our errors, one line, no response bodies."""
    host = _host(provider)
    try:
        yield
    except requests.exceptions.SSLError:
        raise ConfigError(
            f"the TLS certificate of {host} is not trusted; check "
            "REQUESTS_CA_BUNDLE or SSL_CERT_FILE"
        ) from None
    except requests.RequestException as exc:
        # MSAL raises for HTTP 5xx (raise_for_status) and connection errors.
        raise TransientError(
            f"cannot reach {host}: {type(exc).__name__}; check the network"
        ) from None
    except (ValueError, RuntimeError) as exc:
        # MSAL's own checks: authority discovery and issuer (at setup); state,
        # nonce and a missing device endpoint (in a flow).
        reason = _one_line(str(exc).split("\n", 1)[0], 200)
        if setup:
            raise ConfigError(
                f"MSAL cannot use the authority {_authority(provider)!r}: {reason}"
            ) from None
        raise FlowError(f"sign-in to {host} failed: {reason}") from None


def _host(provider: Provider) -> str:
    return http.host_of(_authority(provider))


def _announce_device(provider: Provider, flow: dict[str, Any]) -> None:
    # WARNING, so the CLI's stderr handler shows it: stdout is git's protocol.
    uri, code = flow["verification_uri"], flow["user_code"]
    log.warning(
        "to sign in to %s, open %s and enter the code %s", _host(provider), uri, code
    )
    if flow.get("verification_uri_complete"):
        log.warning("or open %s", flow["verification_uri_complete"])
