"""The program's entry point: git's actions on a fast path, the rest via click.

git runs the helper for every command that talks to a remote, so ``get``,
``store`` and ``erase`` load only what they need; the user-facing commands in
:mod:`helper.cli` (``token``, ``status``, ``logout``, ``explain``) load click.
This module and :mod:`helper.cli` are the only ones that write to stdout or
stderr, or choose an exit code.
"""

import os
import sys

from helper import logs
from helper.errors import FlowError, HelperError, one_line
from helper.protocol import ACTIONS, format_answer, parse

# typing.TYPE_CHECKING without importing typing: every git command loads this.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["main", "run_action", "silence_stdout", "write_stdout"]

log = logs.get("helper")

COMMANDS = frozenset({"token", "status", "logout", "explain"})


def main(argv: list[str] | None = None) -> int:
    """Run one action or command; return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    logs.use_stderr()
    if "--debug" in args[:-1]:
        logs.enable_debug()
    words = [a for a in args if a != "--debug"]
    if len(words) == 1 and words[0] in ACTIONS:
        if logs.debug_enabled():
            logs.configure()
        # With stdout closed a token could not be handed out: no sign-in.
        return run_action(
            words[0], _stdin_lines(), write_stdout, sign_in=sys.stdout is not None
        )
    unknown = bool(words) and words[0] not in COMMANDS and words[0][:1] != "-"
    if unknown and not sys.stdin.isatty():
        # git-credential(1): a helper ignores actions it does not know.
        return 0
    from helper.cli import run

    return run(args)


def _stdin_lines() -> "Iterable[str]":
    # git passes bytes through unchanged: a path or username that is not
    # UTF-8 must survive (surrogateescape) instead of failing the request.
    if sys.stdin is None:  # closed (<&-): an empty request
        return
    for line in sys.stdin.buffer:
        yield line.decode("utf-8", "surrogateescape")


def write_stdout(text: str) -> None:
    """Write *text* to stdout as git sent it (surrogateescape); OSError if not.

    A closed stdout (``>&-``) or a reader that went away is an error to
    report, not a traceback.
    """
    stream = sys.stdout
    if stream is None:
        raise OSError("stdout is closed")
    try:
        stream.buffer.write(text.encode("utf-8", "surrogateescape"))
        stream.buffer.flush()
    except BrokenPipeError:
        silence_stdout()
        raise


def silence_stdout() -> None:
    """Send stdout to /dev/null once its reader has gone away.

    The interpreter flushes stdout again at exit and would report the same
    broken pipe there: that flush then goes nowhere.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def run_action(
    action: str,
    stdin: "Iterable[str]",
    write: "Callable[[str], object]",
    sign_in: bool = True,
) -> int:
    """Read one request, answer it, and return the exit code.

    *sign_in* False allows no sign-in, whatever the settings say.
    """
    try:
        pairs = _dispatch(action, stdin, sign_in)
        text = format_answer(pairs)
    except FlowError as exc:
        if exc.error == "access_denied":
            # The user said no: quit=1 stops git from asking anyone else.
            _answer(write, "quit=1\n")
        return _fail(exc)
    except HelperError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        # Ctrl-C reached git too, which may be gone already: no line for that.
        _answer(write, "quit=1\n", quiet=True)
        return 130
    except Exception as exc:  # never a traceback: see _crash
        return _crash(exc)
    return 0 if _answer(write, text) else 1


def _answer(write: "Callable[[str], object]", text: str, quiet: bool = False) -> bool:
    """Write *text*; False, said in one line (unless *quiet*), when stdout cannot."""
    if not text:  # nothing to say needs no stdout
        return True
    try:
        write(text)
    except OSError as exc:
        if not quiet:
            log.error("cannot write the answer: %s", exc.strerror or exc)
        return False
    return True


def _dispatch(
    action: str, stdin: "Iterable[str]", sign_in: bool
) -> list[tuple[str, str]]:
    cred = parse(stdin)
    if not cred.protocol or not (cred.host or cred.path):
        # git always sends a protocol, and a host or (for "cert") a path, as
        # its own storage helpers require: a request with neither names no
        # credential, and must not match every stored one.
        return []

    from helper import settings
    from helper.store import Store

    # git runs store and erase on every helper: only get may say more.
    resolved = settings.resolve(cred, warn=action == "get")
    resolved.interactive = resolved.interactive and sign_in
    st = Store()
    served = resolved.provider is not None
    if action != "store" and not served and not st.has_host(cred.protocol, cred.host):
        # Not ours: no output, no network (git asks the next helper).
        return []

    from helper import actions

    if action == "get":
        return actions.get(cred, resolved, st)
    if action == "store":
        actions.store(cred, resolved, st)
    else:
        actions.erase(cred, resolved, st)
    return []


def _fail(exc: Exception) -> int:
    log.error("%s", one_line(str(exc)))
    return 1


def _crash(exc: Exception) -> int:
    # An exception we did not foresee may carry request data in its message,
    # so only its type is shown unless the user asked for debug output.
    log.debug("unexpected error", exc_info=True)
    log.error(
        "internal error (%s); run with %s=1 for details",
        type(exc).__name__,
        logs.DEBUG_ENV,
    )
    return 1
