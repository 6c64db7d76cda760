"""A call bounded in time, for what cannot be interrupted: a socket read, D-Bus.

Not in :mod:`helper.timeouts`, which the cache-hit path loads: ``typing`` and
``threading`` cost start-up time that path does not need.
"""

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["within"]

T = TypeVar("T")


def within(call: Callable[[], T], seconds: float) -> T:
    """*call*'s result or exception, or TimeoutError after *seconds*.

    *call* runs in a daemon thread, left behind if it overruns: a socket
    read or a D-Bus call cannot be interrupted, and the process ends soon
    after anyway. The thread holds nothing the caller still needs.
    """
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller as it is
            box["error"] = exc

    worker = threading.Thread(target=run, name="bounded", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
