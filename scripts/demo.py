"""Show the main job on the local rig: clone, push, fetch through the helper.

Starts the rig's OpenID provider (HTTPS, throwaway CA) and git server on
127.0.0.1, points a private git configuration at the helper, and lets
headless Chromium play the user in the one sign-in that is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from rig.ca import create_ca  # noqa: E402 - after the path set-up
from rig.gitserver import GitServer  # noqa: E402
from rig.idp import Provider, start_provider  # noqa: E402

CA_VARIABLES = (
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
)


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def environment(home: Path, ca_path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "OAUTH_"))}
    env.update(dict.fromkeys(CA_VARIABLES, ca_path))
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        GIT_CONFIG_GLOBAL=str(home / "gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        OAUTH_HELPER_STORE="file",
        BROWSER=str(ROOT / "tests" / "rig" / "open-browser"),
        OAUTH_RIG_LOG_DIR=str(home),
        OAUTH_RIG_PYTHON=sys.executable,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


def run(env: dict[str, str], *argv: str, cwd: Path | None = None) -> None:
    print("$ " + " ".join(argv), flush=True)
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdin=subprocess.DEVNULL)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="oauth-helper-demo-") as tmp:
        home = Path(tmp)
        (home / "ca").mkdir()
        ca = create_ca(home / "ca", ("127.0.0.1", "localhost"))
        provider = start_provider(
            ca.ca_path, ca.cert_path, ca.key_path, home / "idp.log"
        )
        try:
            with GitServer(
                home / "srv", provider.introspection_endpoint, ca.ca_path
            ) as server:
                demo(environment(home, ca.ca_path), provider, server, home)
        finally:
            provider.stop()
    return 0


def demo(
    env: dict[str, str], provider: Provider, server: GitServer, home: Path
) -> None:
    base = server.url.rsplit("/", 1)[0]
    step(f"OpenID provider at {provider.issuer}; git server at {server.url}")
    run(env, "git", "config", "--global", "credential.helper", "oauth-helper")
    run(
        env,
        "git",
        "config",
        "--global",
        f"credential.{base}.oauthIssuer",
        provider.issuer,
    )
    run(
        env,
        "git",
        "config",
        "--global",
        f"credential.{base}.oauthClientId",
        "helper-test",
    )
    run(
        env, "git", "config", "--global", f"credential.{base}.oauthScopes", "openid git"
    )
    run(env, "git", "config", "--global", "user.name", "Demo")
    run(env, "git", "config", "--global", "user.email", "demo@example.test")

    step(
        "git clone: no token yet, so the helper signs in (a headless browser signs in)"
    )
    clone = home / "clone"
    run(env, "git", "clone", server.url, str(clone))
    counts = provider.counts()
    print(f"token endpoint requests so far: {counts}")

    step("git push: the cached token is reused, no sign-in, no token request")
    (clone / "demo.txt").write_text("pushed through oauth-helper\n")
    run(env, "git", "add", "demo.txt", cwd=clone)
    run(env, "git", "commit", "-qm", "demo commit", cwd=clone)
    run(env, "git", "push", "-q", "origin", "HEAD", cwd=clone)
    after = provider.counts()
    print(f"token endpoint requests after push: {after} (unchanged: {after == counts})")

    step("What the helper stores (never a secret):")
    run(env, "oauth-helper", "status")
    step("A shell script asks for the token (printed here only as its length):")
    token = subprocess.run(
        ["oauth-helper", "token", base],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"oauth-helper token {base} -> {len(token)} characters")


if __name__ == "__main__":
    sys.exit(main())
