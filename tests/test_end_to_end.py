"""The main job with real parts: git clones, fetches and pushes through the helper.

Real git against the rig's smart-HTTP server, tokens from the rig's OpenID
provider, logins walked by headless Chromium through BROWSER.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from rig.browser import approve
from rig.client import (
    browser_runs,
    configure,
    git,
    record_files,
    run_helper,
    stored_tokens,
)
from rig.gitserver import GitServer
from rig.idp import Provider

# Access tokens live this long in the expiry tests, with a 1 s margin.
SHORT_TTL = 4


@pytest.fixture
def clone(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
    rig_log_dir: Path,
) -> Path:
    """A clone made through the browser flow, with short-lived tokens."""
    provider.set_access_ttl(SHORT_TTL)
    configure(helper_env, git_server, provider)
    dest = tmp_path / "clone"
    git(helper_env, "clone", git_server.url, str(dest))
    return dest


def test_clone_through_browser_flow(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    assert (clone / "README").read_text() == "hello from the rig\n"
    assert provider.counts()["authorization_code"] == 1
    assert browser_runs(rig_log_dir) == 1
    access, refresh = stored_tokens(helper_env)
    assert provider.introspect(access)["active"] is True
    assert refresh


def test_push_after_clone_makes_no_token_request(
    clone: Path,
    provider: Provider,
    git_server: GitServer,
    helper_env: dict[str, str],
    rig_log_dir: Path,
) -> None:
    provider.set_access_ttl(3600)
    before = provider.counts()["total"]
    (clone / "new.txt").write_text("pushed\n")
    git(helper_env, "add", "new.txt", cwd=clone)
    git(helper_env, "commit", "-qm", "add new.txt", cwd=clone)
    git(helper_env, "push", "-q", "origin", "HEAD", cwd=clone)

    assert (
        git_server.rev_parse()
        == git(helper_env, "rev-parse", "HEAD", cwd=clone).strip()
    )
    assert provider.counts()["total"] == before
    assert browser_runs(rig_log_dir) == 1


def wait_for_expiry() -> None:
    time.sleep(SHORT_TTL + 0.5)


def test_fetch_after_expiry_refreshes_once(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    _, old_refresh = stored_tokens(helper_env)
    wait_for_expiry()
    git(helper_env, "fetch", "-q", cwd=clone)

    counts = provider.counts()
    assert counts["refresh_token"] == 1
    assert counts["authorization_code"] == 1
    assert browser_runs(rig_log_dir) == 1
    assert stored_tokens(helper_env)[1] not in ("", old_refresh)


def test_revoked_refresh_token_falls_back_to_login(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    provider.revoke_refresh()
    wait_for_expiry()
    git(helper_env, "fetch", "-q", cwd=clone)

    counts = provider.counts()
    assert counts["refresh_token"] == 1
    assert counts["authorization_code"] == 2
    assert browser_runs(rig_log_dir) == 2


def test_rejected_token_is_erased_then_refreshed(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    provider.set_access_ttl(3600)
    access, refresh = stored_tokens(helper_env)
    provider.revoke_access()
    failed = subprocess.run(
        ["git", "fetch", "-q"],
        env=helper_env,
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert failed.returncode != 0
    assert stored_tokens(helper_env) == ("", refresh)

    git(helper_env, "fetch", "-q", cwd=clone)
    assert provider.counts()["refresh_token"] == 1
    assert browser_runs(rig_log_dir) == 1
    assert stored_tokens(helper_env)[0] not in ("", access)


def test_clone_through_device_flow(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
    rig_log_dir: Path,
) -> None:
    configure(helper_env, git_server, provider, oauthFlow="device")
    proc = subprocess.Popen(
        ["git", "clone", git_server.url, str(tmp_path / "dclone")],
        env=helper_env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    url = _read_verification_url(proc.stderr, lines)
    approve(url)
    with proc.stderr:
        lines.extend(proc.stderr)

    assert proc.wait(timeout=60) == 0, "".join(lines)
    assert (tmp_path / "dclone" / "README").exists()
    assert provider.counts()["device_code"] >= 1
    assert browser_runs(rig_log_dir) == 0


def _read_verification_url(stream: object, lines: list[str]) -> str:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)
        found = re.search(r"(https://\S+/device\S*user_code=\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError("no verification URL on stderr: " + "".join(lines))


def test_unknown_host_gives_nothing(helper_env: dict[str, str]) -> None:
    done = run_helper(
        {**helper_env, "GIT_TERMINAL_PROMPT": "0"},
        "get",
        stdin="protocol=https\nhost=unknown.example\n\n",
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_non_interactive_miss_gives_nothing_and_no_request(
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
) -> None:
    configure(helper_env, git_server, provider)
    host = git_server.url.split("/")[2]
    done = run_helper(
        {**helper_env, "GIT_TERMINAL_PROMPT": "0"},
        "get",
        stdin=f"protocol=http\nhost={host}\n\n",
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert provider.counts()["total"] == 0


def test_corrupt_record_means_a_new_login_and_a_rewritten_record(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    (record,) = record_files(helper_env)
    record.write_bytes(b"oauth-helper-record=1\n\xff\xfe garbage")
    done = subprocess.run(
        ["git", "fetch", "-q"],
        env=helper_env,
        cwd=clone,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )

    assert done.returncode == 0, done.stderr
    assert "unreadable" in done.stderr or "damaged" in done.stderr
    assert provider.counts()["authorization_code"] == 2
    assert provider.introspect(stored_tokens(helper_env)[0])["active"] is True


def test_nobody_to_sign_in_means_no_login_and_no_wait(
    helper_env: dict[str, str], git_server: GitServer, provider: Provider
) -> None:
    configure(helper_env, git_server, provider)
    env = {k: v for k, v in helper_env.items() if k != "BROWSER"}
    host = git_server.url.split("/")[2]
    # setsid: no controlling terminal, as under cron or a CI runner.
    done = subprocess.run(
        ["setsid", "oauth-helper", "get"],
        input=f"protocol=http\nhost={host}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert provider.counts()["total"] == 0


def test_tokens_shorter_than_the_margin_are_reused_not_refreshed(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
) -> None:
    provider.set_access_ttl(30)
    base = configure(helper_env, git_server, provider, oauthExpiryMargin="60")
    git(helper_env, "clone", "-q", git_server.url, str(tmp_path / "clone"))
    request = f"protocol=http\nhost={base.split('/')[2]}\n\n"
    answers = [run_helper(helper_env, "get", stdin=request) for _ in range(3)]

    assert provider.counts()["total"] == 1
    for done in answers:
        fields = dict(line.split("=", 1) for line in done.stdout.splitlines())
        assert int(fields["password_expiry_utc"]) > time.time()
