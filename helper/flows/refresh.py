"""The refresh grant (RFC 6749 §6), sent by hand rather than through
requests-oauthlib, whose extra arguments can leak into the request body.
"""

import dataclasses
import logging

from helper import http
from helper.flows._token import token_from
from helper.providers import Provider
from helper.tokens import Token

__all__ = ["refresh"]

log = logging.getLogger(__name__)


def refresh(provider: Provider, refresh_token: str) -> Token:
    """A new token from *refresh_token*.

    FlowError (with ``error``, e.g. ``invalid_grant``) when the provider
    refuses; TransientError when it cannot be reached, in which case the
    caller keeps the refresh token.
    """
    http.require_secure(provider.token_url, "token_url")
    body = http.post_form(provider.token_url, _request(provider, refresh_token))
    token = token_from(body, http.host_of(provider.token_url))
    log.debug("refreshed a token for %s", http.host_of(provider.token_url))
    # RFC 6749 §6: the server may keep the refresh token and send none back.
    if not token.refresh_token:
        token = dataclasses.replace(token, refresh_token=refresh_token)
    return token


def _request(provider: Provider, refresh_token: str) -> dict[str, str]:
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": provider.client_id,
    }
    if provider.client_secret:
        data["client_secret"] = provider.client_secret
    # Omitted scope means "as originally granted" (§6); send ours only if set.
    if provider.scopes:
        data["scope"] = provider.scope
    return data
