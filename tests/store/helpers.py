"""Running the real executable in an isolated environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
HELPER = Path(sys.executable).with_name("oauth-helper")
# What the caller's session could leak into a helper run: its bus, a keyring
# backend choice, git state, our own settings.
_DROPPED_PREFIXES = ("GIT_", "OAUTH_HELPER_", "XDG_", "PYTHON_KEYRING")
_DROPPED_NAMES = ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY")


def isolated_env(tmp_path: Path, store: str = "file") -> dict[str, str]:
    """Environment for running the real executable, all state in *tmp_path*."""
    env = {k: v for k, v in os.environ.items() if not dropped(k)}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.touch()
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        OAUTH_HELPER_HOME=str(tmp_path / "state"),
        OAUTH_HELPER_STORE=store,
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def dropped(name: str) -> bool:
    return name in _DROPPED_NAMES or name.upper().startswith(_DROPPED_PREFIXES)


def run_helper(
    action: str, request: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``oauth-helper ACTION`` with *request* on stdin."""
    return subprocess.run(
        [str(HELPER), action],
        input=request,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def request(**fields: str) -> str:
    """A request in git's wire format, ended by a blank line."""
    return "".join(f"{k}={v}\n" for k, v in fields.items()) + "\n"
