"""The three git actions: ``get``, ``store`` and ``erase``.

Each takes the parsed request and its resolved settings and returns the
``key=value`` pairs to answer. The cache-hit path of ``get`` stays in this
module and loads nothing heavy; refreshing and signing in live in
:mod:`helper.login`, imported only when needed.
"""

import os
import time

from helper import logs
from helper.errors import ProtocolError
from helper.protocol import Credential, breaks_a_line
from helper.providers import Provider
from helper.settings import Settings
from helper.store import Record, Store, lock_wait

# typing.TYPE_CHECKING without importing typing: every git command loads this.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = ["erase", "get", "store", "target_record"]

log = logs.get(__name__)

Pairs = list[tuple[str, str]]
_TRUE = frozenset({"1", "true", "yes", "on"})


def target_record(cred: Credential, provider: Provider | None) -> Record:
    """The key under which a token for *cred* is (or would be) stored."""
    username = cred.username or (provider.username if provider else "")
    return Record(
        protocol=cred.protocol,
        host=cred.host.lower(),
        path=cred.path,
        username=username,
        client_id=provider.client_id if provider else cred.client_id,
        scope=provider.scope if provider else _scope_key(cred.scope),
    )


def _scope_key(scope: str) -> str:
    # Scopes are a set (RFC 6749 §3.3): "b a" and "a b" name one key.
    return " ".join(sorted(set(scope.replace(",", " ").split())))


def _matches(record: Record, cred: Credential, target: Record) -> bool:
    # git's storage helpers: a request without a username matches any user.
    return (
        record.path == cred.path
        and (not cred.username or record.username == cred.username)
        and record.client_id == target.client_id
        and record.scope == target.scope
        and _answerable(record, cred)
    )


def _answerable(record: Record, cred: Credential) -> bool:
    # An authtype record with no password has nothing for an older caller.
    return (
        not record.authtype or _speaks_authtype(record, cred) or bool(record.password)
    )


def _speaks_authtype(record: Record, cred: Credential) -> bool:
    # git 2.46+: authtype and credential go only to callers announcing the
    # capability; others may still get the record's username and password.
    return bool(record.authtype) and cred.has_capability("authtype")


def find(cred: Credential, provider: Provider | None, st: Store) -> Record | None:
    """The best stored record for *cred*, secrets loaded, or None."""
    target = target_record(cred, provider)
    found = [
        r
        for r in st.candidates(cred.protocol, target.host)
        if _matches(r, cred, target)
    ]
    # Prefer what can be answered now (a request without a username takes
    # any user's), then the exact key, then the newest record.
    margin = provider.expiry_margin if provider else 0
    now = time.time()
    found.sort(
        key=lambda r: (
            _looks_fresh(r, margin, now),
            r.key_hash == target.key_hash,
            r.updated,
        ),
        reverse=True,
    )
    for record in found:
        loaded = st.load_secrets(record)
        if loaded is not None:
            return loaded
    return None


def _looks_fresh(record: Record, margin: int, now: float) -> bool:
    # Before unsealing: a digest of the access token says one is held.
    held = bool(record.current or record.password or record.credential)
    return held and record.outlives(margin, now)


# Request attributes a record is keyed by (and some the answer repeats).
_KEY_FIELDS = ("protocol", "host", "path", "username", "client_id", "scope")


def get(cred: Credential, settings: Settings, st: Store) -> Pairs:
    """Answer from the store; refresh or sign in when the host is served."""
    for name in _KEY_FIELDS:
        if breaks_a_line(getattr(cred, name)):
            # The answer or the record repeats it and could never be written:
            # refuse before a sign-in, not after one whose token is thrown away.
            raise ProtocolError(f"the request's {name} holds CR, LF or NUL")
    provider = settings.provider
    margin = provider.expiry_margin if provider else 0
    record = find(cred, provider, st)
    if record is not None and record.is_fresh(margin):
        log.debug("answering from the store for %s", cred.host)
        return answer(record, cred, margin)
    if provider is None:
        log.debug("%s is not served; nothing fresh is stored", cred.host)
        return _refresh_token_only(record)

    if not provider.client_id:
        return _explain_missing_client(cred, provider, settings.interactive, st)
    from helper import login

    # The slow path: modules below log through the standard logging tree.
    logs.configure()
    if record is not None and not cred.username:
        # Refresh the record that was found (any user matches a request
        # without one), not a record under the provider's default username.
        cred = cred.with_username(record.username)
    interactive = settings.interactive and someone_is_there()
    log.debug("no fresh token for %s (sign-in allowed: %s)", cred.host, interactive)
    record = login.obtain(cred, provider, st, interactive)
    if record is None:
        return []
    # A token handed out for its last seconds (the provider could not be
    # reached) is answered with its real expiry, or git would discard it.
    return answer(record, cred, margin if record.is_fresh(margin) else 0)


def someone_is_there() -> bool:
    """Whether a person could complete a sign-in: a browser, or a terminal.

    Like git's own prompt, which needs /dev/tty: a cron job or a CI runner
    with neither must not wait minutes for a sign-in nobody will see.
    """
    from helper.browser import can_open_browser

    if can_open_browser() or os.name == "nt":
        return True
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        return False
    return True


def _refresh_token_only(record: Record | None) -> Pairs:
    # git 2.41+ hands a stored refresh token on to the next helper, which can
    # then refresh without a login (git-credential(1), oauth_refresh_token).
    # Only for a record git stored: a refresh token the helper obtained never
    # leaves the store (protocol.md, Output).
    if record is None or record.origin != "store" or not record.oauth_refresh_token:
        return []
    return [("oauth_refresh_token", record.oauth_refresh_token)]


def _explain_missing_client(
    cred: Credential, provider: Provider, interactive: bool, st: Store
) -> Pairs:
    # A preset host without a client ID is not served yet: say how to set it
    # up, then stay out of the way (git asks the next helper). Said once
    # where someone could act on it; with nobody there (no terminal, no
    # browser: an IDE's log, cron) the line is not used up, it comes again.
    if not interactive:
        return []
    if not someone_is_there() or st.first_time(
        f"client-id {cred.protocol}://{cred.host}"
    ):
        log.warning("%s", missing_client_advice(cred, provider))
    return []


def missing_client_advice(cred: Credential, provider: Provider) -> str:
    """One line: where to register an app, what to choose, the commands to run."""
    name = provider.name or cred.host
    where = f"at {provider.register_url}" if provider.register_url else "with the host"
    hint = provider.register_hint.replace(
        "{redirect}", provider.redirect_url or "http://127.0.0.1/"
    )
    config = f"git config --global credential.{cred.protocol}://{cred.host}"
    # A provider that refuses public browser-flow clients also needs a secret.
    secret = provider.secret_required and not provider.device_auth_url
    also = f" && {config}.oauthClientSecret <SECRET>" if secret else ""
    return (
        f"{name} needs an OAuth client ID: register an OAuth application {where} "
        f"({hint}), then run: {config}.oauthClientId <ID>{also}"
    )


def answer(record: Record, cred: Credential, margin: int) -> Pairs:
    """The pairs git reads back for a stored record."""
    if _speaks_authtype(record, cred):
        pairs = [("capability[]", "authtype"), ("authtype", record.authtype)]
        pairs.append(("credential", record.credential))
    else:
        pairs = [("username", cred.username or record.username)]
        pairs.append(("password", record.password))
    expiry = record.expiry()
    if expiry is not None:
        # Tell git the token ends when we stop trusting it, not at the last
        # second the server accepts it (git compares whole seconds).
        pairs.append(("password_expiry_utc", str(expiry - record.margin(margin))))
    if record.origin == "store" and record.oauth_refresh_token:
        pairs.append(("oauth_refresh_token", record.oauth_refresh_token))
    return pairs


def store(cred: Credential, settings: Settings, st: Store) -> None:
    """Save the credential git approved, as git's own storage helpers do."""
    keep_authtype = cred.has_capability("authtype") and cred.authtype
    secret = cred.password or (cred.credential if keep_authtype else "")
    if cred.ephemeral.lower() in _TRUE or not secret:
        return
    target = target_record(cred, settings.provider)
    if _is_echo(cred, target, st):
        return

    record = target.copy(
        username=cred.username,
        password=cred.password,
        password_expiry_utc=_valid_expiry(cred.password_expiry_utc),
        oauth_refresh_token=cred.oauth_refresh_token,
        authtype=cred.authtype if keep_authtype else "",
        credential=cred.credential if keep_authtype else "",
        origin="store",
    )
    with _held_unless_signing_in(record, st):
        stored = st.stored(record)
        current = st.load_secrets(stored, warn=False) if stored else None
        if stored is not None and current is None and stored.refreshable:
            # Sealed and not unlockable now (a locked keyring): replacing it
            # would throw away a refresh token nobody can read back.
            log.warning(
                "not storing the credential for %s: the stored token cannot be "
                "unlocked now",
                cred.host,
            )
            return
        st.save(_keeping_grant(record, current))


def _held_unless_signing_in(
    record: Record, st: Store
) -> "AbstractContextManager[object]":
    """The key's lock, or none while another process signs in for the key.

    Waiting minutes for someone else's sign-in would hang git's store or
    erase; writing meanwhile is safe, as the sign-in writes only at its end
    (and then wins, being newer), and keeps what git gave if it fails.
    """
    import contextlib  # store and erase only: a cache hit does without it

    lock = st.lock_unless_signing_in(record, lock_wait(interactive=False))
    if lock is None:
        log.debug("another process holds the lock for %s; not waiting", record.host)
        return contextlib.nullcontext()
    return lock


def _keeping_grant(record: Record, current: Record | None) -> Record:
    """*record*, over a sign-in's record of the same key without losing it.

    git stores what the next helper or the user supplied when we could not
    answer (the provider unreachable, say). Overwriting our record would
    throw away the refresh token that was kept through that very outage: it
    stays, still never handed out, and serves once the stored password is
    erased or expires.
    """
    if current is None or current.origin != "login" or record.oauth_refresh_token:
        return record
    if not (current.oauth_refresh_token or current.msal_cache):
        return record
    return current.replaced(
        password=record.password,
        password_expiry_utc=record.password_expiry_utc,
        authtype=record.authtype,
        credential=record.credential,
    )


def _is_echo(cred: Credential, target: Record, st: Store) -> bool:
    # After a successful request git stores what we answered; our own record
    # already holds it (with the refresh token git 2.39 never echoes back).
    # A git process that started before another one refreshed stores the
    # token it was given, now retired: saving it would throw away the new
    # token and its refresh token. Digests, not secrets, are compared: a
    # locked keyring must not turn an echo into an overwrite.
    return any(
        record.origin == "login"
        and record.path == cred.path
        and _holds(record, cred.password, st)
        for record in st.candidates(cred.protocol, target.host)
    )


def _holds(record: Record, password: str, st: Store) -> bool:
    if record.current or record.retired:
        return record.held_token(password)
    # Written before digests were kept: compare the secret itself.
    loaded = st.load_secrets(record)
    return loaded is not None and loaded.password == password


def _valid_expiry(value: str) -> str:
    # isdigit() alone accepts digits int() and the store refuse, such as "²".
    return value if value.isascii() and value.isdigit() else ""


def erase(cred: Credential, settings: Settings, st: Store) -> None:
    """Forget the credential git rejected; keep refresh tokens we obtained."""
    for record in list(st.candidates(cred.protocol, cred.host.lower())):
        if not _erase_selects(record, cred):
            continue
        loaded = st.load_secrets(record)
        if loaded is not None and _same_secret(loaded, cred):
            _forget(loaded, st)


def _erase_selects(record: Record, cred: Credential) -> bool:
    # git's credential_match: a field the request leaves out matches any
    # value; client_id and scope select a key for non-git callers.
    wanted = (
        (cred.username, record.username),
        (cred.client_id, record.client_id),
        (_scope_key(cred.scope), record.scope),
    )
    given_match = all(not want or want == have for want, have in wanted)
    return given_match and record.path == cred.path


def _same_secret(record: Record, cred: Credential) -> bool:
    # An erase naming a secret removes only a record holding that secret
    # (git 2.46 compares credential as well as password).
    return (not cred.password or cred.password == record.password) and (
        not cred.credential or cred.credential == record.credential
    )


def _secrets(record: Record) -> tuple[str, str]:
    return record.password, record.credential


def _forget(record: Record, st: Store) -> None:
    if record.origin == "login" and (record.oauth_refresh_token or record.msal_cache):
        # The next get refreshes silently instead of starting a login.
        with _held_unless_signing_in(record, st):
            current = st.reload(record)
            # Another process may have refreshed meanwhile: keep its token.
            if current is not None and _secrets(current) == _secrets(record):
                expired = str(int(time.time()))
                dropped = {"password": "", "authtype": "", "credential": ""}
                st.save(current.replaced(password_expiry_utc=expired, **dropped))
        return
    st.remove(record)
