"""The store: where credentials and tokens are kept between runs.

Layout under the state folder (0700): ``records/<host hash>/<key hash>`` holds
one record each (0600); ``locks/<key hash>.lock`` are the per-key locks. Hashed
names keep hosts and usernames out of paths. A record is plain text in the
``file`` store, or sealed with a key held in the OS keyring (``keyring``).
"""

import os
import time

from helper import logs, timeouts
from helper.errors import StoreError
from helper.store import files
from helper.store.records import (
    Record,
    host_hash,
    parse_record,
    parse_secrets,
    token_digest,
)

# typing.TYPE_CHECKING without importing typing: every git command loads this.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Record", "Store", "lock_wait"]

log = logs.get(__name__)

KINDS = ("auto", "keyring", "file")
# Damaged records are set aside under this prefix, kept for a look.
_ASIDE = ".corrupt-"
# After the keyring failed, "auto" writes plain files for a while instead of
# trying it (and warning) on every refresh: a day when there is none at all
# (a headless box), minutes when it timed out or was locked.
_ABSENT_BACKOFF = 24 * 3600
_FAILED_BACKOFF = 600
# How often a waiter that gives way to a sign-in looks for one.
_SIGN_IN_POLL = 0.25


class Store:
    """Find, save and remove records; lock a key across processes."""

    def __init__(self, root: str | None = None, kind: str | None = None) -> None:
        self.root = root or files.state_dir()
        self.kind = (kind or os.environ.get("OAUTH_HELPER_STORE") or "auto").lower()
        if self.kind not in KINDS:
            raise StoreError(
                f"OAUTH_HELPER_STORE must be one of {', '.join(KINDS)}, "
                f"not {self.kind!r}"
            )
        self._warned: set[str] = set()

    def _private(self, *names: str) -> str:
        """Check (creating where missing) the state folder and *names* below it.

        The state folder may be a link the user made (to another disk); the
        folders the helper makes inside it must be real ones, owner-only.
        Returns the innermost folder's path.
        """
        files.ensure_private_dir(self.root, link_ok=True)
        path = self.root
        for name in names:
            path = os.path.join(path, name)
            files.ensure_private_dir(path)
        return path

    def _host_dir(self, protocol: str, host: str) -> str:
        return os.path.join(self.root, "records", host_hash(protocol, host))

    def _path(self, record: Record) -> str:
        return os.path.join(
            self._host_dir(record.protocol, record.host), record.key_hash
        )

    def has_host(self, protocol: str, host: str) -> bool:
        """True when anything is stored for this protocol and host."""
        return os.path.isdir(self._host_dir(protocol, host))

    def candidates(self, protocol: str, host: str) -> "Iterator[Record]":
        """Every readable record for one protocol and host, secrets not loaded."""
        # Only this host's folder is listed, and no lock is taken: the cost of
        # a cache hit does not grow with the number of hosts stored.
        folder = self._host_dir(protocol, host)
        names = _names(folder)
        if names:
            self._private("records", os.path.basename(folder))
        for name in names:
            record = self._read(os.path.join(folder, name))
            if record is not None:
                yield record

    def _read(self, path: str) -> Record | None:
        try:
            data = files.read_bytes(path)
        except files.NotARecord:
            data = b""  # something else took the record's name: set it aside
        except StoreError as exc:
            # Unreadable (permissions, I/O): a miss, said once, not a failure.
            self._warn_once(f"{exc}; ignoring that stored record")
            return None
        if data is None:
            return None
        try:
            record = parse_record(data.decode("utf-8", "surrogateescape"))
        except (StoreError, UnicodeDecodeError):
            record = None
        # A record must sit under its own key's name, in its own host's
        # folder: one that does not was damaged or copied, and could
        # otherwise answer for another key or host.
        folder, name = os.path.split(path)
        if (
            record is None
            or record.key_hash != name
            or host_hash(record.protocol, record.host) != os.path.basename(folder)
        ):
            self._quarantine(path)
            return None
        return record

    def _quarantine(self, path: str) -> None:
        # Reported once: the broken file is moved aside (kept for a look), so
        # the next run no longer sees it and the next save replaces it.
        folder, name = os.path.split(path)
        aside = os.path.join(folder, f"{_ASIDE}{name}")
        try:
            os.replace(path, aside)
        except OSError as exc:
            log.debug("could not move the record aside: %s", exc.strerror)
            aside = path
        log.warning("ignoring an unreadable stored record (kept as %s)", aside)

    def first_time(self, topic: str) -> bool:
        """True the first time *topic* is seen in this store, then False."""
        folder = self._private("notes")
        path = os.path.join(folder, host_hash("note", topic))
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror}") from None
        return True

    def stored(self, record: Record) -> Record | None:
        """What is stored under *record*'s key, secrets not loaded (None if gone)."""
        return self._read(self._path(record))

    def reload(self, record: Record) -> Record | None:
        """Read *record*'s key again from disk, secrets loaded (None if gone)."""
        current = self.stored(record)
        return None if current is None else self.load_secrets(current)

    def load_secrets(self, record: Record, warn: bool = True) -> Record | None:
        """The record with its secrets; None when its keyring key is unusable.

        *warn* False leaves saying so to the caller.
        """
        if not record.sealed:
            return record
        from helper.store import sealing

        try:
            text = sealing.unseal(record.key_hash, record.sealed).decode(
                "utf-8", "surrogateescape"
            )
            secrets = parse_secrets(text)
        except StoreError as exc:
            if warn:
                self._warn_once(f"cannot unlock a stored token ({exc}); ignoring it")
            else:
                log.debug("cannot unlock a stored token: %s", exc)
            return None
        return record.copy(**secrets)

    def save(self, record: Record) -> Record:
        """Write *record* atomically (sealed where the keyring is used); return it."""
        refreshable = "1" if record.oauth_refresh_token or record.msal_cache else ""
        record = record.copy(
            host=record.host.lower(),
            updated=str(int(time.time())),
            refreshable=refreshable,
            current=token_digest(record.password) if record.password else "",
        )
        # A value that cannot be written (CR, LF, NUL) fails here, before a
        # folder or a keyring key exists for it; so does one too large to
        # read back.
        size = len(record.to_text().encode("utf-8", "surrogateescape"))
        # Sealing writes the secrets in base64: a third more.
        if size * 4 // 3 + 1024 > files.RECORD_LIMIT:
            raise StoreError("the credential is too large to store")
        folder = self._private("records", host_hash(record.protocol, record.host))
        sealed = self._seal(record)
        record.kind = "keyring" if sealed else "file"
        files.write_atomic(self._path(record), record.to_text(sealed))
        files.discard_stale_temps(folder, time.time())
        return record

    def _seal(self, record: Record) -> str:
        if self.kind == "file" or (self.kind == "auto" and self._keyring_failed()):
            return ""
        from helper.store import sealing

        try:
            return sealing.seal(
                record.key_hash,
                record.secrets_text().encode("utf-8", "surrogateescape"),
            )
        except StoreError as exc:
            if self.kind == "keyring":
                raise _keyring_required(exc) from None
            self._remember_keyring_failure(exc)
            return ""

    def check_ready(self) -> None:
        """Raise StoreError now if a new token could not be saved later.

        Called before a refresh or sign-in: a rotated refresh token the store
        then refuses is lost, and the user signed in for nothing.
        """
        self._private("records")
        if self.kind != "keyring":
            return
        from helper.store import sealing

        try:
            sealing.probe()
        except StoreError as exc:
            raise _keyring_required(exc) from None

    def _marker(self) -> str:
        return os.path.join(self.root, "keyring-unavailable")

    def _keyring_failed(self) -> bool:
        path = self._marker()
        try:
            text = files.read_bytes(path, limit=4096)
            age = time.time() - os.lstat(path).st_mtime
        except (OSError, StoreError, files.NotARecord):
            # Something else in its place: try the keyring again.
            return False
        if text is None:
            return False
        return age < (
            _ABSENT_BACKOFF if text.startswith(b"absent") else _FAILED_BACKOFF
        )

    def _remember_keyring_failure(self, exc: StoreError) -> None:
        from helper.store.sealing import KeyringAbsent

        absent = isinstance(exc, KeyringAbsent)
        retry = "in 24 hours" if absent else f"in {_FAILED_BACKOFF // 60} minutes"
        self._warn_once(
            f"the keyring is unusable ({exc}); keeping tokens in owner-only files "
            f"under {self.root} until it is tried again {retry} "
            "(set OAUTH_HELPER_STORE=file to silence this)"
        )
        try:
            files.write_atomic(
                self._marker(), f"{'absent' if absent else 'failed'}: {exc}\n"
            )
        except StoreError as failure:
            # Only spares later runs a probe: the token is still saved.
            log.debug("%s", failure)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def remove(self, record: Record) -> bool:
        """Delete *record* (and its keyring key); True when it existed."""
        existed = files.remove(self._path(record))
        if record.kind == "keyring":
            from helper.store import sealing

            try:
                sealing.forget(record.key_hash)
            except StoreError as exc:
                log.warning("could not delete a keyring key: %s", exc)
        return existed

    def discard_damaged(self, protocol: str = "", host: str = "") -> int:
        """Delete records set aside as damaged (one host's, or all); how many.

        They may still hold a token in clear: a logout must not leave them.
        """
        top = os.path.join(self.root, "records")
        folders = [host_hash(protocol, host)] if host else _names(top)
        removed = 0
        for folder in (os.path.join(top, name) for name in folders):
            try:
                names = [n for n in os.listdir(folder) if n.startswith(_ASIDE)]
            except OSError:
                continue
            removed += sum(files.remove(os.path.join(folder, n)) for n in names)
        return removed

    def lock(self, record: Record, timeout: float | None = None) -> "KeyLock":
        """A cross-process lock for *record*'s key (a lock file of its own)."""
        folder = self._private("locks")
        path = os.path.join(folder, f"{record.key_hash}.lock")
        return KeyLock(path, record.host, timeout)

    def lock_unless_signing_in(
        self, record: Record, timeout: float
    ) -> "KeyLock | None":
        """*record*'s lock, taken; None while its holder signs in, or after
        *timeout* s.

        For callers that need no sign-in of their own: waiting minutes for
        someone else's would only hang them.
        """
        from helper.errors import LockTimeoutError

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            lock = self.lock(record, min(_SIGN_IN_POLL, max(left, 0.0)))
            try:
                return lock.__enter__()
            except LockTimeoutError:
                if left <= 0 or self.sign_in_marked(record):
                    return None

    def mark_sign_in(self, record: Record, signing_in: bool) -> None:
        """Say (or stop saying) that *record*'s lock holder is signing in.

        A file beside the lock: waiters that cannot take the lock read it to
        choose between waiting and giving up.
        """
        path = self._sign_in_path(record)
        if signing_in:
            self._private("locks")
            files.write_atomic(path, f"{os.getpid()}\n")
        else:
            files.remove(path)

    def sign_in_marked(self, record: Record) -> bool:
        """True while another process signs in for *record*'s key."""
        return os.path.exists(self._sign_in_path(record))

    def _sign_in_path(self, record: Record) -> str:
        return os.path.join(self.root, "locks", f"{record.key_hash}.sign-in")

    def all_records(self) -> "Iterator[Record]":
        """Every record in the store, secrets not loaded (for status and logout)."""
        top = os.path.join(self.root, "records")
        hosts = _names(top)
        if hosts:
            # The same refusal as on the action path: status reads secrets'
            # neighbours, and logout deletes, only in a private folder.
            self._private("records")
        for host in hosts:
            # Each host's folder too: a link there would lead status (which
            # fixes modes, sets aside) and logout (which deletes) elsewhere.
            folder = self._private("records", host)
            for name in _names(folder):
                record = self._read(os.path.join(folder, name))
                if record is not None:
                    yield record


def _names(folder: str) -> list[str]:
    # Sorted for a stable listing; dot files (temporary, moved aside) skipped;
    # a folder removed meanwhile by another process is simply empty.
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StoreError(f"cannot list {folder}: {exc.strerror}") from None
    return sorted(n for n in names if not n.startswith("."))


class KeyLock:
    """Context manager around :class:`filelock.FileLock`, with our own error."""

    def __init__(self, path: str, host: str, timeout: float | None) -> None:
        self.path = path
        self.host = host
        self.timeout = lock_wait(interactive=True) if timeout is None else timeout
        self._lock: object = None

    def __enter__(self) -> "KeyLock":
        if self._lock is not None:  # taken already (lock_unless_signing_in)
            return self
        # filelock uses flock(2) on POSIX: the kernel drops a dead process's
        # lock, so a crashed helper never blocks the next one.
        import filelock

        lock = filelock.FileLock(self.path, timeout=self.timeout, mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise self._timeout_error() from None
        except OSError as exc:
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from None
        self._lock = lock
        return self

    def _timeout_error(self) -> StoreError:
        from helper.errors import LockTimeoutError

        return LockTimeoutError(
            f"another oauth-helper process has been working on {self.host} for "
            f"over {self.timeout:g} s; wait for it to finish, then try again"
        )

    def __exit__(self, *exc: object) -> None:
        release = getattr(self._lock, "release", None)
        if release is not None:
            release()


def _keyring_required(exc: StoreError) -> StoreError:
    return StoreError(
        f"OAUTH_HELPER_STORE=keyring but the keyring is unusable: {exc}; start "
        "one (such as gnome-keyring), or set OAUTH_HELPER_STORE=file"
    )


def lock_wait(interactive: bool) -> float:
    """How long to wait for the process that holds a key's lock.

    A caller that may sign in outwaits a whole sign-in, which the user may be
    completing right now (git fetching submodules in parallel asks once, not
    once per submodule). Any other waits for a refresh only: the slowest one
    the HTTP timeouts allow, with room to spare. OAUTH_HELPER_LOCK_TIMEOUT
    sets one wait for both.
    """
    default = timeouts.SIGN_IN + 30 if interactive else timeouts.REFRESH_WAIT
    return timeouts.from_env("OAUTH_HELPER_LOCK_TIMEOUT", default)
