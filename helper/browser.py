"""Opening the user's browser without waiting for it and without letting it
touch stdin or stdout, which carry git's credential protocol.
"""

import contextlib
import logging
import os
import shlex
import subprocess
import sys
import warnings
import webbrowser
from collections.abc import Iterator

__all__ = ["can_open_browser", "open_url"]

log = logging.getLogger(__name__)

_registered_for: str | None = None

# How long a BROWSER command gets to report failure by its exit status. One
# still running then has started a browser (in the foreground); one that
# exited 0 has handed the URL on, as a command that returns at once does.
_SETTLE = 0.25


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
    """Start the user's browser on *url* without waiting; whether one started."""
    _sync_registry()
    try:
        with _protocol_fds_hidden(), _left_running():
            # webbrowser would try BROWSER again, waiting: it replaces the
            # platform defaults here rather than going ahead of them.
            if os.environ.get("BROWSER"):
                return any(_start(argv, url) for argv in _browser_commands())
            return webbrowser.open(url)
    except (webbrowser.Error, OSError) as exc:
        log.debug("could not open a browser: %s", type(exc).__name__)
        return False


def _browser_commands() -> list[list[str]]:
    """The commands in BROWSER, in order, each as argv with %s for the URL."""
    commands = []
    for part in os.environ.get("BROWSER", "").split(os.pathsep):
        argv = _command_line(part)
        if argv:
            commands.append(argv)

    return commands


def _start(argv: list[str], url: str) -> bool:
    """Run one BROWSER command in a session of its own; whether it worked.

    webbrowser waits for a BROWSER command to exit (GenericBrowser), so one
    that stays in the foreground would hold the sign-in; its BackgroundBrowser
    counts a command as started only if it is still running the instant
    after it was spawned, so a command that hands the URL on and returns at
    once would race. The exit status, when there is one, decides instead.
    """
    command = [arg.replace("%s", url) for arg in argv]
    try:
        process = subprocess.Popen(command, close_fds=True, start_new_session=True)
    except OSError as exc:
        log.debug("could not start a BROWSER command: %s", type(exc).__name__)
        return False
    try:
        status = process.wait(timeout=_SETTLE)
    except subprocess.TimeoutExpired:
        return True

    if status != 0:
        log.debug("a BROWSER command exited with status %d", status)
    return status == 0


def _command_line(part: str) -> list[str]:
    """One BROWSER entry as argv, read as the webbrowser documentation says.

    An entry holding %s is a command line, the URL taking the place of %s (a
    trailing "&" only asked for the background, as in webbrowser.get); any
    other entry names a browser, which gets the URL as its one argument.
    """
    if "%s" not in part:
        return [part, "%s"] if part else []
    try:
        argv = shlex.split(part)
    except ValueError:
        log.debug("BROWSER holds an entry with unbalanced quotes; skipped")
        return []
    return argv[:-1] if argv[-1:] == ["&"] else argv


@contextlib.contextmanager
def _left_running() -> Iterator[None]:
    """Let a started browser outlive its Popen object without a warning.

    No handle on a browser still running is kept; subprocess warns that the
    child still runs, then keeps it on its own list and reaps it later.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"subprocess \d+ is still running", ResourceWarning
        )
        yield


def _sync_registry() -> None:
    # webbrowser reads BROWSER once per process; reread it if it changed, so
    # the platform defaults never start a BROWSER command that is now unset.
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
    if sys.stdout is not None:
        sys.stdout.flush()
    # A closed fd (``get >&-``) gets a placeholder first, so that no copy
    # made below lands on it, and is closed again after.
    closed = [fd for fd in (0, 1) if not _is_open(fd)]
    for fd in closed:
        placeholder = os.open(os.devnull, os.O_RDWR)  # often fd itself
        if placeholder != fd:
            _point(fd, placeholder)
    saved = os.dup(0), os.dup(1)
    try:
        _point(0, os.open(os.devnull, os.O_RDONLY))
        _point(1, os.dup(2) if _is_open(2) else os.open(os.devnull, os.O_WRONLY))
        yield
    finally:
        for fd, copy in enumerate(saved):
            _point(fd, copy)
        for fd in closed:
            os.close(fd)


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
