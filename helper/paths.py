"""Per-user folders on Linux and the BSDs, by the XDG Base Directory rule.

Spelled out here rather than through platformdirs, whose import costs more
start-up time than a whole cache hit; off those systems platformdirs is used.
"""

import os

from helper.errors import HelperError

__all__ = ["xdg_home"]


def xdg_home(variable: str, fallback: str) -> str:
    """``$variable``, or ``~/fallback`` when it is unset, empty or relative.

    The specification says to ignore a relative value, and here it matters
    most: git runs helpers in the repository's folder, so a relative path
    would put token files in the work tree.
    """
    value = os.environ.get(variable, "")
    if os.path.isabs(value):
        return value
    # An empty HOME is not "/" (what expanduser makes of it): a mistake, not
    # a place; only an unset one falls back to the password entry.
    home = os.path.expanduser("~") if os.environ.get("HOME") != "" else ""
    if not os.path.isabs(home):
        # No HOME and no password entry: nowhere that belongs to the user.
        raise HelperError(f"no home folder to keep files in: set HOME or {variable}")
    return os.path.join(home, fallback)
