"""The controlling terminal, read a line at a time without ever blocking.

Where a person can answer while git owns stdin and stdout (the credential
protocol); git's own prompts read the same device.
"""

import os
import select
import time

__all__ = ["DEVICE", "Terminal"]

# Never stdin: git feeds the credential protocol through it (git-credential(1)).
DEVICE = "/dev/tty"


class Terminal:
    """The controlling terminal, read a line at a time without ever blocking."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = b""
        self.ended = False

    @classmethod
    def open(cls) -> "Terminal | None":
        """The terminal, or None without one (cron, a CI runner, a service)."""
        try:
            return cls(os.open(DEVICE, os.O_RDONLY | getattr(os, "O_NOCTTY", 0)))
        except OSError:
            return None

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)

    def lines(self, timeout: float) -> list[str]:
        """Lines completed within *timeout* s, trimmed; blank ones left out."""
        if not self._readable(timeout):
            return []
        chunk = self._read()
        if not chunk:
            self.ended = True
            return []

        # A terminal in raw mode sends Enter as CR.
        self._pending += chunk.replace(b"\r", b"\n")
        *done, self._pending = self._pending.split(b"\n")
        text = (line.decode(errors="replace").strip() for line in done)
        return [line for line in text if line]

    def _readable(self, timeout: float) -> bool:
        # A read from a background process group would stop the whole
        # process (SIGTTIN, POSIX job control): wait for the foreground.
        if not self._in_foreground():
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([self._fd], [], [], timeout)
        return bool(ready)

    def _in_foreground(self) -> bool:
        try:
            return os.tcgetpgrp(self._fd) == os.getpgrp()
        except OSError:  # not our controlling terminal: no job control on it
            return True

    def _read(self) -> bytes:
        try:
            return os.read(self._fd, 4096)
        except OSError:  # EIO: the terminal hung up (the SSH session ended)
            return b""
