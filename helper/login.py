"""Getting a fresh token: refresh when we can, sign in when we must.

All of it runs under the per-key lock, so however many git processes miss at
once, one refreshes (or signs in) and the others read its result. A rotated
refresh token is saved before the access token is handed out (the old one is
already dead at the provider). A provider with an ``authority`` (Microsoft
Entra ID) goes through MSAL, whose cache (refresh token inside) is kept in
the record's ``msal_cache``.
"""

import contextlib
import time
from collections.abc import Iterator

from helper import logs
from helper.errors import ConfigError, FlowError, StoreError, TransientError
from helper.protocol import Credential
from helper.providers import Provider
from helper.store import Record, Store, lock_wait
from helper.tokens import Token

__all__ = ["complete_endpoints", "no_token_endpoint", "obtain"]

log = logs.get(__name__)


def obtain(
    cred: Credential, provider: Provider, st: Store, interactive: bool
) -> Record | None:
    """A fresh record for *cred*: refreshed, or from a new login, or None."""
    from helper.actions import target_record

    target = target_record(cred, provider)
    with contextlib.ExitStack() as held:
        if not _hold(held, st, target, interactive):
            return None
        # Holding the lock, nobody is signing in: a mark left by a process
        # that was killed mid sign-in must not turn later callers away.
        st.mark_sign_in(target, False)
        current = st.reload(target)
        if _answers(current, cred, provider.expiry_margin):
            return current
        st.check_ready()

        if current is not None and _refresh_secret(provider, current):
            refreshed = _refresh(provider, st, current)
            if refreshed is not None:
                return refreshed
        if not interactive:
            return None
        if current is not None:
            # A new login starts a new record but remembers the old tokens.
            target = target.copy(retired=current.replaced(password="").retired)
        st.mark_sign_in(target, True)
        try:
            with _ended_by_signals():
                return _login(cred, provider, st, target)
        finally:
            st.mark_sign_in(target, False)


@contextlib.contextmanager
def _ended_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end a sign-in as an exit, so its mark is cleared.

    Killed outright, the process would leave the mark, and callers nobody
    watches would give way to a sign-in that no longer runs.
    """
    import signal

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    names = ("SIGTERM", "SIGHUP")
    wanted = [getattr(signal, name) for name in names if hasattr(signal, name)]
    try:
        before = {signum: signal.signal(signum, leave) for signum in wanted}
    except ValueError:  # not the main thread (a library caller): as it was
        yield
        return
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _answers(current: Record | None, cred: Credential, margin: int) -> bool:
    # A credential for authtype callers alone leaves an older caller with
    # nothing to send: it is no answer for them.
    if current is None or not current.is_fresh(margin):
        return False
    return bool(current.password) or cred.has_capability("authtype")


def _hold(
    held: contextlib.ExitStack, st: Store, target: Record, interactive: bool
) -> bool:
    """Take *target*'s lock into *held*; False when it is not worth the wait.

    A caller nobody watches (GIT_TERMINAL_PROMPT=0, a cron job) waits for a
    refresh, but not for a sign-in another process is waiting on: it could
    only get the token minutes later, and it must not hang a script.
    """
    if interactive:
        held.enter_context(st.lock(target, lock_wait(interactive=True)))
        return True
    lock = st.lock_unless_signing_in(target, lock_wait(interactive=False))
    if lock is None:
        log.debug("another process is signing in to %s", target.host)
        return False
    held.enter_context(lock)
    return True


def _uses_msal(provider: Provider) -> bool:
    return bool(provider.authority)


def _refresh_secret(provider: Provider, record: Record) -> str:
    """What a refresh needs from *record*: MSAL's cache or our refresh token."""
    return record.msal_cache if _uses_msal(provider) else record.oauth_refresh_token


def _refresh(provider: Provider, st: Store, current: Record) -> Record | None:
    if _uses_msal(provider):
        return _refresh_msal(provider, st, current)
    from helper.flows.refresh import refresh

    complete_endpoints(provider, current.host)
    try:
        token = refresh(provider, current.oauth_refresh_token)
    except TransientError as exc:
        return _still_valid(current, exc)
    except FlowError as exc:
        if exc.error == "temporarily_unavailable":
            return _still_valid(current, exc)
        if exc.error != "invalid_grant":
            # RFC 6749 §5.2: only invalid_grant says the refresh token is
            # dead; invalid_client or invalid_scope is a setting to fix, and
            # the refresh token stays for when it is fixed.
            raise
        log.info("the provider refused the refresh token (%s)", exc.error)
        return _after_refusal(provider, st, current)
    return _save(st, current, token)


def _refresh_msal(provider: Provider, st: Store, current: Record) -> Record | None:
    from helper.flows import msal

    try:
        signed = msal.refresh(provider, current.msal_cache)
    except TransientError as exc:
        return _still_valid(current, exc)
    if signed is None:
        return _after_refusal(provider, st, current)
    return _save(st, current, signed.token, msal_cache=signed.cache)


def _still_valid(current: Record, cause: FlowError) -> Record | None:
    # The provider is unreachable: the refresh token stays; an access token
    # that has not really expired is still worth handing out.
    expiry = current.expiry()
    if current.password and (expiry is None or expiry > time.time() + 1):
        log.warning("could not refresh the token; using it for its last seconds")
        return current.copy(password_expiry_utc=str(expiry) if expiry else "")
    # The cause says which: unreachable, HTTP 5xx or 429, or the provider's
    # own temporarily_unavailable.
    raise TransientError(
        f"could not refresh the token for {current.host} ({cause}); "
        "the stored refresh token is kept, try again later"
    )


def _after_refusal(provider: Provider, st: Store, current: Record) -> Record | None:
    # Re-read once: a helper outside our lock (another key, another machine
    # sharing the folder) may have rotated the token in between.
    again = st.reload(current)
    used = _refresh_secret(provider, current)
    if again is not None and _refresh_secret(provider, again) not in ("", used):
        # Its access token may be gone (erased there): refresh with the new
        # refresh token rather than throw it away. Each retry needs another
        # rotation by someone else, so this ends.
        return again if again.is_fresh(0) else _refresh(provider, st, again)
    if current.origin != "login":
        # What git stored is dead, and nothing of ours needs remembering.
        st.remove(current)
        return None
    # Kept without secrets: its token digests still tell git's late echoes.
    dead = {"password": "", "oauth_refresh_token": "", "msal_cache": ""}
    st.save(current.replaced(password_expiry_utc="", **dead))
    return None


def _login(cred: Credential, provider: Provider, st: Store, target: Record) -> Record:
    if _uses_msal(provider):
        return _login_msal(cred, provider, st, target)
    complete_endpoints(provider, cred.host)
    token = _run_flow(cred, provider)
    return _save(st, target, token)


def _run_flow(cred: Credential, provider: Provider) -> Token:
    flow = choose_flow(provider)
    log.info("signing in to %s with the %s flow", cred.host, flow)
    if flow == "device":
        from helper.flows.device import login_device

        return login_device(provider)
    from helper.flows.pkce import login_browser

    return login_browser(provider, login_hint=_login_hint(cred, provider))


def _login_hint(cred: Credential, provider: Provider) -> str:
    """The request's username as an account hint, where it names someone.

    The preset's default username (oauth2, x-access-token) is a placeholder
    git sends back, not an account; a name that is not text (a %FF in the
    URL) cannot travel in a URL query either.
    """
    name = cred.username
    if name == provider.username:
        return ""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return name


def _login_msal(
    cred: Credential, provider: Provider, st: Store, target: Record
) -> Record:
    from helper.flows import msal

    flow = choose_flow(provider)
    log.info("signing in to %s with MSAL's %s flow", cred.host, flow)
    if flow == "device":
        signed = msal.login_device(provider)
    else:
        # Azure DevOps URLs carry the organization as user name
        # (https://org@dev.azure.com/org/...): only an address is a login hint.
        hint = _login_hint(cred, provider)
        hint = hint if "@" in hint else ""
        signed = msal.login_browser(provider, login_hint=hint)
    return _save(st, target, signed.token, msal_cache=signed.cache)


def choose_flow(provider: Provider) -> str:
    """``browser`` or ``device``, resolving ``auto`` for this machine."""
    if provider.flow != "auto":
        return provider.flow
    from helper.browser import can_open_browser

    # Through MSAL the device endpoint comes from discovery, later.
    has_device = bool(provider.device_auth_url) or _uses_msal(provider)
    if can_open_browser() or not has_device:
        return "browser"
    return "device"


def _save(st: Store, base: Record, token: Token, **extra: str) -> Record:
    if not token.access_token:
        raise FlowError("the token endpoint answered without an access_token")
    record = base.replaced(
        password=token.access_token,
        oauth_refresh_token=token.refresh_token or base.oauth_refresh_token,
        password_expiry_utc=str(token.expires_at) if token.expires_at else "",
        origin="login",
        # A credential git stored over our record (capability[]=authtype) is
        # not this token: it must not be answered in its place.
        authtype="",
        credential="",
        **extra,
    )
    # The saved copy carries its update time, which caps the expiry margin
    # for short-lived tokens (Record.margin).
    try:
        return st.save(record)
    except StoreError as exc:
        # The provider has issued the token (and may have retired the old
        # refresh token): git can still use it this once.
        log.warning("%s; using the new token without storing it", exc)
        return record.copy(updated=str(int(time.time())))


def complete_endpoints(provider: Provider, host: str) -> None:
    """Fill missing endpoints from the issuer's discovery document."""
    needs = not provider.token_url or not provider.auth_url
    if provider.issuer and needs:
        from helper.discovery import discover

        document = discover(provider.issuer, provider.discovery_url)
        _fill(provider, "auth_url", document.get("authorization_endpoint"))
        _fill(provider, "token_url", document.get("token_endpoint"))
        _fill(
            provider, "device_auth_url", document.get("device_authorization_endpoint")
        )
        _default_scopes(provider, document)
    if not provider.token_url:
        raise ConfigError(no_token_endpoint(provider, host))


def no_token_endpoint(provider: Provider, host: str) -> str:
    """What to set when nothing says where *host*'s token endpoint is."""
    form = f" ({provider.issuer_hint})" if provider.issuer_hint else ""
    return (
        f"no token endpoint for {host}: set its oauthIssuer{form}, or "
        "oauthAuthURL and oauthTokenURL"
    )


def _default_scopes(provider: Provider, document: dict[str, object]) -> None:
    # An OpenID provider refuses an authorization request without "openid"
    # (OpenID Connect Core §3.1.2.1); ask for it when nobody chose scopes.
    supported = document.get("scopes_supported")
    if not provider.scopes and isinstance(supported, list) and "openid" in supported:
        provider.set("scopes", ("openid",), "discovery")


def _fill(provider: Provider, key: str, value: object) -> None:
    if value and not getattr(provider, key):
        provider.set(key, str(value), "discovery")
