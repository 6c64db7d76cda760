"""Driving git and the helper as a user would, for the end-to-end tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rig.gitserver import GitServer
from rig.idp import Provider


def git(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    """Run git; fail the test with git's stderr if it fails; return stdout."""
    done = subprocess.run(
        ["git", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"git {args[0]} failed: {done.stderr}"
    return done.stdout


def configure(
    env: dict[str, str], server: GitServer, provider: Provider, **extra: str
) -> str:
    """Make the helper serve the git server's origin; return that origin URL."""
    base = server.url.rsplit("/", 1)[0]
    settings = {
        "oauthIssuer": provider.issuer,
        "oauthClientId": provider.client_id,
        "oauthScopes": "openid git",
        "oauthExpiryMargin": "1",
        **extra,
    }
    git(env, "config", "--global", "credential.helper", "oauth-helper")
    for key, value in settings.items():
        git(env, "config", "--global", f"credential.{base}.{key}", value)
    return base


def browser_runs(log_dir: Path) -> int:
    """How many times the BROWSER script was started."""
    return len(list(log_dir.glob("browser-*.log")))


def record_files(env: dict[str, str]) -> list[Path]:
    """The helper's record files (file store)."""
    root = Path(env["XDG_STATE_HOME"]) / "oauth-helper" / "records"
    return [p for p in root.glob("*/*") if not p.name.startswith(".")]


def stored_tokens(env: dict[str, str]) -> tuple[str, str]:
    """The access and refresh token the helper keeps (file store, plain text)."""
    (record,) = record_files(env)
    fields = dict(line.split("=", 1) for line in record.read_text().splitlines())
    return fields.get("password", ""), fields.get("oauth_refresh_token", "")


def run_helper(
    env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run oauth-helper with *args*, feeding *stdin*."""
    return subprocess.run(
        ["oauth-helper", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
