"""Opening the user's browser without letting it touch stdin or stdout, which
carry git's credential protocol.
"""

import contextlib
import logging
import os
import sys
import webbrowser
from collections.abc import Iterator

__all__ = ["can_open_browser", "open_url"]

log = logging.getLogger(__name__)

_registered_for: str | None = None


def can_open_browser() -> bool:
    """Whether a browser can plausibly reach this machine's loopback listener."""
    # Over SSH the browser would run on another machine than our listener.
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return False
    if os.environ.get("BROWSER"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

    return True


def open_url(url: str) -> bool:
    """Open *url* in the user's browser; whether one was launched."""
    _sync_registry()
    try:
        with _protocol_fds_hidden():
            return webbrowser.open(url)
    except (webbrowser.Error, OSError) as exc:
        log.debug("could not open a browser: %s", type(exc).__name__)
        return False


def _sync_registry() -> None:
    # webbrowser reads BROWSER once per process; reread it if it changed.
    global _registered_for
    current = os.environ.get("BROWSER", "")
    if _registered_for is not None and _registered_for != current:
        webbrowser.register_standard_browsers()
    _registered_for = current


@contextlib.contextmanager
def _protocol_fds_hidden() -> Iterator[None]:
    """Point fd 1 at stderr and fd 0 at /dev/null while a browser starts.

    Children inherit file descriptors, not sys.stdout: a browser (or the
    script in BROWSER) printing a line would corrupt git's protocol, and one
    reading stdin could swallow it.
    """
    sys.stdout.flush()
    saved = os.dup(0), os.dup(1)
    try:
        _point(0, os.open(os.devnull, os.O_RDONLY))
        _point(1, os.dup(2) if _is_open(2) else os.open(os.devnull, os.O_WRONLY))
        yield
    finally:
        for fd, copy in enumerate(saved):
            _point(fd, copy)


def _point(fd: int, source: int) -> None:
    """Make *fd* refer to what *source* refers to, and close *source*."""
    try:
        os.dup2(source, fd)
    finally:
        os.close(source)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
