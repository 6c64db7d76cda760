"""Loggers that load :mod:`logging` only when something is logged.

git runs the helper on every remote command, and importing ``logging`` costs
more than a whole cache hit; most runs log nothing. Each module still has
one logger named after it (``logs.get(__name__)``), and every record goes to
the standard ``logging`` tree, under the ``helper`` logger.
"""

import os
import sys

__all__ = [
    "DEBUG_ENV",
    "Logger",
    "configure",
    "debug_enabled",
    "enable_debug",
    "get",
    "use_stderr",
]

DEBUG_ENV = "OAUTH_HELPER_DEBUG"
_state = {"configured": False, "debug": False, "stderr": False}


def debug_enabled() -> bool:
    """True when ``--debug`` was given or OAUTH_HELPER_DEBUG is set."""
    return _state["debug"] or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


def enable_debug() -> None:
    """Turn on debug output for this process (the ``--debug`` switch)."""
    _state["debug"] = True


def use_stderr() -> None:
    """Let log lines reach stderr: the program's choice (entry and CLI only).

    Until a program asks, nothing attaches a handler, so the package used as
    a library leaves logging to its host application.
    """
    _state["stderr"] = True


def configure() -> None:
    """Attach the stderr handler the program asked for, once, when first needed."""
    if _state["configured"] or not _state["stderr"]:
        return

    # One stderr handler on the package's root logger; stdout stays protocol.
    import logging

    from helper.errors import one_line

    class OneLine(logging.Formatter):
        # Messages carry hosts, usernames and server text: a line break or an
        # escape sequence in one must not forge lines or drive the terminal.
        # Only the message: a debug traceback keeps its lines.
        def formatMessage(self, record: logging.LogRecord) -> str:
            record.message = one_line(record.message)
            return super().formatMessage(record)

    _state["configured"] = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLine("oauth-helper: %(message)s"))
    root = logging.getLogger("helper")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug_enabled() else logging.WARNING)
    root.propagate = False


class Logger:
    """The subset of :class:`logging.Logger` this project uses, loaded lazily."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _emit(
        self, level: str, msg: str, args: tuple[object, ...], **kw: object
    ) -> None:
        import logging

        configure()
        getattr(logging.getLogger(self.name), level)(msg, *args, **kw)

    def debug(self, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log at DEBUG, only when debug output is on."""
        if debug_enabled():
            self._emit("debug", msg, args, exc_info=exc_info)

    def info(self, msg: str, *args: object) -> None:
        """Log at INFO, only when debug output is on."""
        if debug_enabled():
            self._emit("info", msg, args)

    def warning(self, msg: str, *args: object) -> None:
        """Log a warning (always shown)."""
        self._emit("warning", msg, args)

    def error(self, msg: str, *args: object) -> None:
        """Log an error (always shown)."""
        self._emit("error", msg, args)


def get(name: str) -> Logger:
    """The logger for module *name*."""
    return Logger(name)
