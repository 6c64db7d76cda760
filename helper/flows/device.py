"""The device authorization grant (RFC 8628) for machines with no usable
browser: show a code, let the user approve it elsewhere, poll for the token.
"""

import math
import time
from typing import Any

from helper import http, logs, timeouts
from helper.errors import ConfigError, FlowError, TransientError
from helper.flows._token import token_from
from helper.providers import Provider
from helper.tokens import Token, lifetime

__all__ = [
    "DEFAULT_INTERVAL",
    "MIN_INTERVAL",
    "SLOW_DOWN_STEP",
    "check_grant",
    "login_device",
]

log = logs.get(__name__)

# RFC 8628 §3.2: without "interval" the client waits 5 s between polls;
# §3.5: "slow_down" adds 5 s. Module constants so tests can shrink them.
DEFAULT_INTERVAL = 5.0
SLOW_DOWN_STEP = 5.0
# A server's interval below this is raised to it: one asking for a poll every
# microsecond would have us hammer it (and itself) for minutes.
MIN_INTERVAL = 1.0
_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def login_device(provider: Provider, *, timeout: float = timeouts.SIGN_IN) -> Token:
    """Sign in with a user code entered on another device."""
    http.require_secure(provider.device_auth_url, "device_auth_url")
    http.require_secure(provider.token_url, "token_url")
    grant = _authorize(provider)
    _announce(provider, grant)
    deadline = time.monotonic() + _lifetime(grant, timeout)
    return _poll(provider, grant, deadline)


def _authorize(provider: Provider) -> dict[str, Any]:
    # RFC 8628 §3.1-3.2: the device authorization request and response.
    data = _client_fields(provider)
    if provider.scopes:
        data["scope"] = provider.scope
    grant = http.post_form(provider.device_auth_url, data)
    check_grant(grant, http.host_of(provider.device_auth_url))
    return grant


def check_grant(grant: dict[str, Any], host: str) -> None:
    """Refuse a device authorization answer that is incomplete or unsafe to show.

    Used for MSAL's device flow too: what the server sends is shown on the
    user's terminal, where a line break or an escape sequence could forge
    other lines, and a page to type a code into must not be plain http
    (RFC 8628 §5.4, remote phishing).
    """
    # Some providers (Google) spell it verification_url.
    grant.setdefault("verification_uri", grant.get("verification_url"))
    for key in ("device_code", "user_code", "verification_uri"):
        if not isinstance(grant.get(key), str) or not grant[key]:
            raise FlowError(f"{host} answered the device request without {key}")
    if not grant["user_code"].isprintable():
        raise FlowError(f"{host} sent a user_code with control characters")
    if not _safe_uri(grant["verification_uri"]):
        raise FlowError(f"{host} sent a verification_uri that is not an https URL")
    complete = grant.get("verification_uri_complete")
    if not (isinstance(complete, str) and _safe_uri(complete)):
        grant.pop("verification_uri_complete", None)


def _safe_uri(uri: str) -> bool:
    if not uri.isprintable():
        return False
    try:
        http.require_secure(uri, "verification_uri")
    except (ConfigError, ValueError):
        return False
    return True


def _client_fields(provider: Provider) -> dict[str, str]:
    data = {"client_id": provider.client_id}
    if provider.client_secret:
        data["client_secret"] = provider.client_secret
    return data


def _announce(provider: Provider, grant: dict[str, Any]) -> None:
    # The user code is meant to be read and typed (RFC 8628 §3.3); only
    # device_code is a secret, and it stays out of the prompt.
    host = http.host_of(provider.token_url)
    uri, code = grant["verification_uri"], grant["user_code"]
    log.warning("to sign in to %s, open %s and enter the code %s", host, uri, code)
    complete = grant.get("verification_uri_complete")
    if isinstance(complete, str) and complete:
        log.warning("or open %s", complete)


def _lifetime(grant: dict[str, Any], timeout: float) -> float:
    # The device code dies after expires_in (§3.2): polling longer is futile.
    # An unusable one (absent, negative, 400 digits) leaves our timeout.
    seconds = lifetime(grant.get("expires_in"))
    return timeout if seconds is None else min(timeout, seconds)


def _interval(grant: dict[str, Any]) -> float:
    try:
        interval = float(grant["interval"])
    except (KeyError, TypeError, ValueError, OverflowError):
        # OverflowError: a JSON integer too large for a float.
        return DEFAULT_INTERVAL
    if not 0 < interval < math.inf:
        return DEFAULT_INTERVAL
    return max(interval, MIN_INTERVAL)


def _poll(provider: Provider, grant: dict[str, Any], deadline: float) -> Token:
    data = {**_client_fields(provider), "grant_type": _GRANT_TYPE}
    data["device_code"] = grant["device_code"]
    interval = _interval(grant)
    last: FlowError | None = None
    while time.monotonic() + interval < deadline:
        time.sleep(interval)
        try:
            body = http.post_form(provider.token_url, data)
        except FlowError as exc:
            interval = _next_interval(exc, interval)
            last = exc
            continue
        return token_from(body, http.host_of(provider.token_url))

    raise _timed_out(grant, last)


def _next_interval(exc: FlowError, interval: float) -> float:
    """The wait before the next poll, or re-raise a final answer (§3.5)."""
    if isinstance(exc, TransientError):
        # §3.5: back off exponentially on connection trouble.
        return interval * 2
    if exc.error == "authorization_pending":
        return interval
    if exc.error == "slow_down":
        return interval + SLOW_DOWN_STEP
    if exc.error == "expired_token":
        raise FlowError(
            "the device code expired before sign-in finished; run the command again",
            exc.error,
            exc.description,
        ) from None
    if exc.error == "access_denied":
        raise FlowError("sign-in was denied", exc.error, exc.description) from None
    raise exc


def _timed_out(grant: dict[str, Any], last: FlowError | None) -> FlowError:
    # A provider that stayed unreachable is a transient failure, not a timeout.
    if isinstance(last, TransientError):
        return last
    return FlowError(
        f"timed out waiting for sign-in at {grant['verification_uri']}; "
        "run the command again"
    )
