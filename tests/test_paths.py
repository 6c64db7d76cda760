"""Where per-user files go: XDG variables, and the relative values to ignore."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helper import paths
from helper.discovery import cache_dir
from helper.errors import HelperError
from helper.settings import config_file
from helper.store.files import state_dir


def test_an_absolute_value_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/srv/state")

    assert paths.xdg_home("XDG_STATE_HOME", ".local/state") == "/srv/state"


@pytest.mark.parametrize("value", ["", ".state", "state/here", "~/state"])
def test_unset_empty_or_relative_means_the_home_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OAUTH_HELPER_HOME", raising=False)

    assert state_dir() == str(tmp_path / ".local/state/oauth-helper")
    assert config_file() == str(tmp_path / ".config/oauth-helper/config.toml")
    assert cache_dir() == tmp_path / ".cache/oauth-helper/discovery"


def test_a_relative_state_home_keeps_tokens_out_of_the_work_tree(
    helper_env: dict[str, str], tmp_path: Path
) -> None:
    # git runs the helper in the repository's folder.
    work_tree = tmp_path / "repo"
    work_tree.mkdir()
    env = {**helper_env, "XDG_STATE_HOME": ".state"}
    request = "protocol=https\nhost=a.example\nusername=me\npassword=secret-1\n\n"

    stored = subprocess.run(
        ["oauth-helper", "store"],
        input=request,
        env=env,
        cwd=work_tree,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (stored.returncode, stored.stderr) == (0, "")
    assert list(work_tree.iterdir()) == []
    records = Path(helper_env["HOME"], ".local/state/oauth-helper/records")
    assert len(list(records.iterdir())) == 1


@pytest.mark.parametrize("home", ["", "relative/home"])
def test_an_empty_or_relative_home_is_an_error_not_the_root(
    monkeypatch: pytest.MonkeyPatch, home: str
) -> None:
    monkeypatch.setenv("HOME", home)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)

    with pytest.raises(HelperError, match="no home folder to keep files in"):
        paths.xdg_home("XDG_STATE_HOME", ".local/state")
