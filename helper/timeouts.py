"""How long anything may take: the bounds that keep git from hanging.

A module of its own, importing nothing heavy: a process that only waits for
another one's refresh must not load requests to learn how long to wait.
"""

import os

from helper.errors import ConfigError

__all__ = ["HTTP", "REFRESH_WAIT", "SIGN_IN", "from_env"]

# (connect, read) seconds: no request may wait forever on a silent server.
# Each bounds one socket operation; a whole exchange (one request, its
# response read in full) may take their sum, however the server drips it.
HTTP = (5.0, 30.0)
# Seconds a sign-in may take before it gives up (the user's browser or code).
SIGN_IN = 300
# A caller that may not sign in waits this long for another one's refresh:
# four exchanges at their slowest (discovery's candidate URLs, where the
# first ones answer "not here", and the token request). Discovery is cached,
# and stops at the first URL that does not answer at all.
REFRESH_WAIT = 4 * sum(HTTP)


def from_env(name: str, default: float) -> float:
    """Seconds from the environment variable *name*; *default* when unset.

    Anything but a finite number of seconds is a setting to fix, said in one
    line, never a silent fallback.
    """
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds < float("inf"):
        raise ConfigError(f"{name} must be a number of seconds")
    return seconds
