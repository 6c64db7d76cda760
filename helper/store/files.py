"""Owner-only folders and atomic file writes for the store.

Every write goes to a temporary file in the same folder, is flushed to disk,
and replaces the old file with one rename, so a reader (or a process killed
mid-write) sees the old record or the new one, never a torn one.
"""

import errno
import os
import stat
import sys

from helper import logs
from helper.errors import StoreError
from helper.paths import xdg_home

__all__ = [
    "RECORD_LIMIT",
    "TEMP_PREFIX",
    "NotARecord",
    "discard_stale_temps",
    "ensure_private_dir",
    "read_bytes",
    "remove",
    "state_dir",
    "write_atomic",
]

# Readers skip every name starting with a dot: temporary and moved-aside files.
TEMP_PREFIX = ".tmp-"
# A temporary file this old was left by a killed writer, not one at work.
_STALE_TEMP_AGE = 3600

_POSIX = sys.platform != "win32"
# Never follow a link, never wait on a FIFO (O_NOFOLLOW and O_NONBLOCK, where
# the system has them).
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NON_BLOCK = getattr(os, "O_NONBLOCK", 0)
# A record holds a few tokens and MSAL's cache: tens of KB. Far past that is
# not a record, and is not read into memory (nor written).
RECORD_LIMIT = 16 * 1024 * 1024
log = logs.get(__name__)


def state_dir() -> str:
    """The per-user folder for tokens and locks (``OAUTH_HELPER_HOME`` wins)."""
    override = os.environ.get("OAUTH_HELPER_HOME")
    if override:
        # git runs helpers in each repository's folder: a relative path
        # would scatter tokens across every working tree.
        if not os.path.isabs(override):
            raise StoreError("OAUTH_HELPER_HOME must be an absolute path")
        return override
    if sys.platform in ("win32", "darwin"):
        import platformdirs

        return platformdirs.user_state_dir("oauth-helper", appauthor=False)
    return os.path.join(xdg_home("XDG_STATE_HOME", ".local/state"), "oauth-helper")


def ensure_private_dir(path: str, link_ok: bool = False) -> None:
    """Create *path* as 0700 if missing; refuse one that others can write.

    A symbolic link is refused unless *link_ok*: inside the state folder one
    would lead reads, mode fixes and deletions to files elsewhere.
    """
    try:
        try:
            info = os.lstat(path)
        except FileNotFoundError:  # first use: made here (one stat if not)
            os.makedirs(path, mode=0o700, exist_ok=True)
            info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) and link_ok:
            info = os.stat(path)
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{path} is not a folder of oauth-helper's; remove it")
    if _POSIX:
        _check_private(path, info)


def _check_private(path: str, info: os.stat_result) -> None:
    if info.st_uid != os.getuid():
        raise StoreError(
            f"{path} belongs to another user; remove it or set OAUTH_HELPER_HOME"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IRWXO):
        raise StoreError(
            f"{path} is open to other users; fix it with: chmod 700 '{path}'"
        )


class NotARecord(Exception):
    """Something other than a record file took a record's name."""


def read_bytes(path: str, limit: int = 0) -> bytes | None:
    """The file's content, or None when it does not exist.

    Raises NotARecord for what is not a plain file of ours within size: a
    symbolic link (not followed), a FIFO (not waited on), a device, a folder,
    another user's file, or one larger than *limit* (any record, by default).
    """
    limit = limit or RECORD_LIMIT
    flags = os.O_RDONLY | _NO_FOLLOW | _NON_BLOCK | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise NotARecord(path) from None
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        # Another user's file, or one linked from elsewhere (a record is only
        # ever renamed into place), is not ours to read or change.
        foreign = _POSIX and (info.st_uid != os.getuid() or info.st_nlink != 1)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit or foreign:
            raise NotARecord(path)
        _keep_private(path, fd, info)
        return _read_all(fd, limit + 1)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _read_all(fd: int, most: int) -> bytes:
    chunks = []
    while most > 0:
        chunk = os.read(fd, min(most, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        most -= len(chunk)
    return b"".join(chunks)


def _keep_private(path: str, fd: int, info: os.stat_result) -> None:
    # We write records 0600; one that others can read was copied or changed
    # by hand. Made owner-only again, and said, as its token may be exposed.
    if _POSIX and info.st_mode & 0o077:
        os.fchmod(fd, 0o600)
        log.warning("%s was readable by other users; made it owner-only", path)


def write_atomic(path: str, text: str) -> None:
    """Write *text* to *path* as 0600: temp file, fsync, rename, fsync folder."""
    folder = os.path.dirname(path)
    temp = os.path.join(folder, f"{TEMP_PREFIX}{os.urandom(8).hex()}")
    try:
        _write_new(temp, text.encode("utf-8", "surrogateescape"))
        os.replace(temp, path)
    except OSError as exc:
        _discard(temp)
        raise StoreError(f"cannot write {path}: {exc.strerror}") from None
    _sync_dir(folder)


def _write_new(path: str, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _sync_dir(folder: str) -> None:
    # The rename is durable only once the folder itself is flushed (POSIX).
    if not _POSIX:
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        log.debug("could not remove a temporary file: %s", exc.strerror)


def discard_stale_temps(folder: str, now: float) -> None:
    """Delete temporary files that a killed writer left in *folder*."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            if now - os.stat(path).st_mtime > _STALE_TEMP_AGE:
                os.unlink(path)
        except OSError as exc:
            log.debug("could not remove a temporary file: %s", exc.strerror)


def remove(path: str) -> bool:
    """Delete *path*; True when it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"cannot remove {path}: {exc.strerror}") from None
    return True
