"""The error tree: every failure the helper reports to its user is one of these.

Messages are one line, say what failed and what to do next, and never carry a
secret (see :mod:`helper.redact`).
"""

__all__ = [
    "ConfigError",
    "FlowError",
    "HelperError",
    "LockTimeoutError",
    "ProtocolError",
    "StoreError",
    "TransientError",
    "one_line",
]


class HelperError(Exception):
    """Base of every error the helper expects and reports in one line."""


class ProtocolError(HelperError):
    """Malformed input on stdin, or a value that cannot be written safely."""


class ConfigError(HelperError):
    """Provider settings that are missing, contradictory or unreachable."""


class FlowError(HelperError):
    """An OAuth flow failed; carries the RFC 6749 ``error`` code when known."""

    def __init__(self, message: str, error: str = "", description: str = "") -> None:
        super().__init__(message)
        self.error = error
        self.description = description


class TransientError(FlowError):
    """The provider could not be reached or answered 5xx: retry later, keep state."""


class StoreError(HelperError):
    """The token store could not be read or written."""


class LockTimeoutError(StoreError):
    """Another helper process held the per-key lock for too long."""


def one_line(text: str) -> str:
    """*text* with unprintable characters written as repr writes them (\\x1b).

    Messages carry text from servers, config and stored records: a raw line
    break would split a message, an escape sequence would drive the terminal.
    """
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    # A byte that was not UTF-8, kept by surrogateescape: shown as that byte.
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return repr(ch)[1:-1]
