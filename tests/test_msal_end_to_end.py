"""git through the helper's MSAL path: the rig's OpenID provider configured as
an ``oauthAuthority`` (MSAL's ``oidc_authority``), real git, headless Chromium.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from rig.browser import approve
from rig.client import browser_runs, configure, git, record_files, run_helper
from rig.gitserver import GitServer
from rig.idp import Provider

# Access tokens live this long in the expiry tests, with a 1 s margin.
SHORT_TTL = 4


@pytest.fixture
def provider(tenant: Provider) -> Provider:
    """Every test here signs in through MSAL: the provider under /tenant."""
    return tenant


def use_msal(
    env: dict[str, str], server: GitServer, provider: Provider, **extra: str
) -> str:
    """Serve the git server through MSAL with the rig provider as authority."""
    return configure(
        env,
        server,
        provider,
        oauthAuthority=provider.issuer,
        oauthClientId=provider.client_id,
        **extra,
    )


def stored(env: dict[str, str]) -> dict[str, str]:
    """The one record's fields (file store, plain text)."""
    (record,) = record_files(env)
    return dict(line.split("=", 1) for line in record.read_text().splitlines())


def cache_secrets(fields: dict[str, str]) -> list[str]:
    """Every secret inside MSAL's cache: access, refresh and ID tokens."""
    cache = json.loads(fields["msal_cache"])
    kinds = ("AccessToken", "RefreshToken", "IdToken")
    return [e["secret"] for kind in kinds for e in cache.get(kind, {}).values()]


@pytest.fixture
def clone(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
) -> Path:
    """A clone made through MSAL's browser flow, with short-lived tokens."""
    provider.set_access_ttl(SHORT_TTL)
    use_msal(helper_env, git_server, provider)
    dest = tmp_path / "clone"
    git(helper_env, "clone", git_server.url, str(dest))
    return dest


def test_clone_through_msal_browser_flow(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    assert (clone / "README").read_text() == "hello from the rig\n"
    assert provider.counts()["authorization_code"] == 1
    assert browser_runs(rig_log_dir) == 1
    fields = stored(helper_env)
    assert provider.introspect(fields["password"])["active"] is True
    # The refresh token lives in MSAL's cache, not in our own field.
    assert "oauth_refresh_token" not in fields
    assert len(cache_secrets(fields)) == 3


def test_fetch_after_expiry_refreshes_silently(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    before = stored(helper_env)
    time.sleep(SHORT_TTL + 0.5)
    git(helper_env, "fetch", "-q", cwd=clone)

    counts = provider.counts()
    assert (counts["authorization_code"], counts["refresh_token"]) == (1, 1)
    assert browser_runs(rig_log_dir) == 1
    after = stored(helper_env)
    assert after["password"] != before["password"]
    assert after["msal_cache"] != before["msal_cache"]


def test_revoked_refresh_token_falls_back_to_login(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    provider.revoke_refresh()
    time.sleep(SHORT_TTL + 0.5)
    git(helper_env, "fetch", "-q", cwd=clone)

    counts = provider.counts()
    assert (counts["authorization_code"], counts["refresh_token"]) == (2, 1)
    assert browser_runs(rig_log_dir) == 2


def test_rejected_token_is_erased_then_refreshed(
    clone: Path, provider: Provider, rig_log_dir: Path, helper_env: dict[str, str]
) -> None:
    provider.set_access_ttl(3600)
    provider.revoke_access()
    failed = subprocess.run(
        ["git", "fetch", "-q"], env=helper_env, cwd=clone, capture_output=True
    )
    assert failed.returncode != 0

    git(helper_env, "fetch", "-q", cwd=clone)
    assert provider.counts()["refresh_token"] == 1
    assert browser_runs(rig_log_dir) == 1


def test_clone_through_msal_device_flow(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
    rig_log_dir: Path,
) -> None:
    use_msal(helper_env, git_server, provider, oauthFlow="device")
    proc = subprocess.Popen(
        ["git", "clone", git_server.url, str(tmp_path / "dclone")],
        env=helper_env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    approve(_verification_url(proc.stderr, lines))
    with proc.stderr:
        lines.extend(proc.stderr)

    assert proc.wait(timeout=60) == 0, "".join(lines)
    assert (tmp_path / "dclone" / "README").exists()
    assert provider.counts()["device_code"] >= 1
    assert browser_runs(rig_log_dir) == 0


def _verification_url(stream: object, lines: list[str]) -> str:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)
        found = re.search(r"or open (https://\S+/device\S*user_code=\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError("no verification URL on stderr: " + "".join(lines))


def test_debug_run_shows_no_secret_on_stderr(
    helper_env: dict[str, str], git_server: GitServer, provider: Provider
) -> None:
    use_msal(helper_env, git_server, provider)
    env = {**helper_env, "OAUTH_HELPER_DEBUG": "1"}
    request = f"url={git_server.url}\n\n"
    login = run_helper(env, "get", stdin=request)
    secrets = cache_secrets(stored(helper_env))
    # Expire our record's token so that the second run refreshes.
    (record,) = record_files(helper_env)
    text = re.sub(
        r"password_expiry_utc=\d+", "password_expiry_utc=1", record.read_text()
    )
    record.write_text(text)
    refresh = run_helper(env, "get", stdin=request)

    secrets += cache_secrets(stored(helper_env))
    for done in (login, refresh):
        answer = dict(line.split("=", 1) for line in done.stdout.splitlines())
        assert done.returncode == 0, done.stderr
        assert set(answer) == {"username", "password", "password_expiry_utc"}
        secrets.append(answer["password"])
    # Debug output did happen, in both runs.
    assert "open this URL to sign in" in login.stderr
    assert "refreshing silently through MSAL" in refresh.stderr
    assert provider.counts()["refresh_token"] == 1
    for done in (login, refresh):
        for secret in secrets:
            assert secret not in done.stderr


# The real `get`, then the modules it loaded, written to argv[1].
MODULES_AFTER_GET = """
import sys
from helper.entry import main
code = main(["get"])
with open(sys.argv[1], "w") as out:
    out.write("\\n".join([f"code={code}", *sorted(sys.modules)]))
"""


def test_cache_hit_loads_no_msal(
    tmp_path: Path,
    helper_env: dict[str, str],
    git_server: GitServer,
    provider: Provider,
) -> None:
    use_msal(helper_env, git_server, provider)
    request = f"url={git_server.url}\n\n"
    first = run_helper(helper_env, "get", stdin=request)
    assert first.returncode == 0, first.stderr
    before = provider.counts()["total"]

    report = tmp_path / "modules"
    hit = subprocess.run(
        [helper_env["OAUTH_RIG_PYTHON"], "-c", MODULES_AFTER_GET, str(report)],
        input=request,
        env=helper_env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    code, *modules = report.read_text().splitlines()
    assert (code, hit.stdout) == ("code=0", first.stdout)
    assert provider.counts()["total"] == before
    heavy = ("msal", "requests", "helper.login", "helper.flows")
    assert [m for m in modules if m.startswith(heavy)] == []
