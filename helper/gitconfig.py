"""Read git config for a URL with one ``git config --get-urlmatch`` call.

Spawned with ``os.posix_spawnp`` where available: importing ``subprocess``
costs more start-up time than everything else a cache hit does.
"""

import os

from helper import logs

__all__ = ["read_urlmatch"]

log = logs.get(__name__)


def read_urlmatch(section: str, url: str) -> dict[str, str]:
    """Return ``{lowercased key: last value}`` of *section* that apply to *url*."""
    # -z: entries end in NUL and a name ends in LF, so a value holding a line
    # break stays one value (and is refused as such) instead of reading as
    # another key. A name alone is a key without a value (true, to git).
    argv = ["git", "config", "-z", "--get-urlmatch", section, url]
    text = _run(argv)
    values: dict[str, str] = {}
    for entry in text.split("\0"):
        if not entry:
            continue
        name, _, value = entry.partition("\n")
        values[name.removeprefix(section + ".").lower()] = value
    return values


def _run(argv: list[str]) -> str:
    if not hasattr(os, "posix_spawnp"):
        return _run_subprocess(argv)

    read_fd, write_fd = os.pipe()
    null_fd = os.open(os.devnull, os.O_RDWR)
    actions = [
        (os.POSIX_SPAWN_DUP2, null_fd, 0),
        (os.POSIX_SPAWN_DUP2, write_fd, 1),
        (os.POSIX_SPAWN_DUP2, null_fd, 2),
    ]
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    except OSError as exc:
        log.debug("cannot run git: %s", exc)
        return ""
    finally:
        os.close(write_fd)
        os.close(null_fd)
    return _collect(pid, read_fd)


def _collect(pid: int, read_fd: int) -> str:
    chunks = []
    with os.fdopen(read_fd, "rb") as stream:
        chunks.append(stream.read())
    _, status = os.waitpid(pid, 0)
    # Exit 1 means "no value"; anything else is a broken config, which git
    # itself reports when it runs the helper's caller.
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        log.debug("git config exited with status %s", code)
    return b"".join(chunks).decode("utf-8", "replace")


def _run_subprocess(argv: list[str]) -> str:
    import subprocess

    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("cannot run git: %s", exc)
        return ""
    return done.stdout
