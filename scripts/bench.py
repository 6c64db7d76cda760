"""Measure the helper's hot paths against the bare interpreter, in one run.

Rows: the venv's ``python -I -c pass`` (the baseline); ``get`` for a host the
helper does not serve, as git runs it and through the ``oauth-helper``
launcher; ``get`` served from the file store with 1 and with 10,000 stored
hosts; a ``get`` that has to refresh, alone and as 16 parallel callers at
expiry against the rig's local provider. The package is compiled first, as a
wheel install does, so no run pays for compiling it. The hot paths are
sampled round-robin, so a change in load weighs on every row alike.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# What git runs for credential.helper = oauth-helper; and the entry-point
# launcher pip generates for `oauth-helper`, measured once for comparison.
HELPER = str(BIN / "git-credential-oauth-helper")
LAUNCHED = str(BIN / "oauth-helper")
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helper.store import Record, Store  # noqa: E402 - after the path set-up

SERVED_HOST = "git.bench.test"


def interleaved_medians(runs: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median ms of each run, sampled round-robin so that a change in the
    machine's load during the benchmark weighs on every row alike."""
    for run in runs:
        run()  # warm the page cache and any lazily written state
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for run, taken in zip(runs, samples, strict=True):
            start = time.perf_counter()
            run()
            taken.append((time.perf_counter() - start) * 1000)
    return [statistics.median(taken) for taken in samples]


def command(
    argv: list[str], env: dict[str, str], stdin: str = ""
) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(
            argv, input=stdin.encode(), env=env, capture_output=True, check=True
        )

    return run


def base_env(home: Path, served: bool = True) -> dict[str, str]:
    gitconfig = home / "gitconfig"
    gitconfig.write_text(
        f'[credential "https://{SERVED_HOST}"]\n\toauthClientId = bench\n'
        f"\toauthTokenURL = https://{SERVED_HOST}/token\n"
        if served
        else ""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "OAUTH_"))}
    env.update(
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        OAUTH_HELPER_HOME=str(home / "state"),
        OAUTH_HELPER_STORE="file",
        XDG_CONFIG_HOME=str(home / "config"),
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def seed(env: dict[str, str], count: int) -> None:
    """Store *count* hosts, the first being the served one with a valid token."""
    store = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
    future = str(int(time.time()) + 86400)
    for index in range(count):
        host = SERVED_HOST if index == 0 else f"host{index}.bench.test"
        store.save(
            Record(
                protocol="https",
                host=host,
                username="oauth2",
                client_id="bench",
                password=f"token-{index}",
                password_expiry_utc=future,
                origin="login",
            )
        )


def hot_paths(repeat: int) -> list[tuple[str, float]]:
    baseline = command([str(BIN / "python"), "-I", "-c", "pass"], dict(os.environ))
    unknown = "protocol=https\nhost=unknown.test\n\n"
    served = f"protocol=https\nhost={SERVED_HOST}\n\n"
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        small, large = base_env(Path(one)), base_env(Path(many))
        seed(small, 1)
        seed(large, 10_000)
        rows = {
            "python -I -c pass (baseline)": baseline,
            "get, host not served": command([HELPER, "get"], small, unknown),
            "the same through pip's oauth-helper launcher": command(
                [LAUNCHED, "get"], small, unknown
            ),
            "get, cache hit (1 stored host)": command([HELPER, "get"], small, served),
            "get, cache hit (10,000 stored hosts)": command(
                [HELPER, "get"], large, served
            ),
        }
        medians = interleaved_medians(list(rows.values()), repeat)
    return list(zip(rows, medians, strict=True))


class RefreshRig:
    """The rig's provider, one browser login, then refreshes at every expiry."""

    TTL = 4  # access-token lifetime (s); with a 1 s margin a token is stale after 3 s

    def __enter__(self) -> RefreshRig:
        from rig.ca import create_ca
        from rig.idp import start_provider

        self.tmp = tempfile.TemporaryDirectory()
        home = Path(self.tmp.name)
        (home / "ca").mkdir()
        ca = create_ca(home / "ca", ("127.0.0.1", "localhost"))
        self.provider = start_provider(
            ca.ca_path, ca.cert_path, ca.key_path, home / "provider.log"
        )
        try:
            self.provider.set_access_ttl(self.TTL)
            self.env = self._env(home, ca.ca_path)
            self._login()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _env(self, home: Path, ca_path: str) -> dict[str, str]:
        env = base_env(home, served=False)
        url = f"credential.https://{SERVED_HOST}"
        for key, value in (
            ("oauthIssuer", self.provider.issuer),
            ("oauthClientId", self.provider.client_id),
            ("oauthExpiryMargin", "1"),
            ("oauthScopes", "openid git"),
        ):
            subprocess.run(
                ["git", "config", "--global", f"{url}.{key}", value],
                env=env,
                check=True,
            )
        for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
            env[name] = ca_path
        env.update(
            BROWSER=str(ROOT / "tests" / "rig" / "open-browser"),
            OAUTH_RIG_LOG_DIR=str(home),
            OAUTH_RIG_PYTHON=sys.executable,
        )
        env.pop("GIT_TERMINAL_PROMPT", None)
        return env

    def _login(self) -> None:
        done = subprocess.run(
            [HELPER, "token", f"https://{SERVED_HOST}/"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        if done.returncode != 0:
            logs = "".join(p.read_text() for p in Path(self.tmp.name).glob("browser-*"))
            raise SystemExit(f"login for the refresh rows failed: {done.stderr}{logs}")

    def timed_refresh(self, callers: int) -> float:
        """Wall time (ms) of *callers* parallel gets once the token is stale."""
        time.sleep(self.TTL - 1 + 0.2)
        before = self.provider.counts()["refresh_token"]
        run = command(
            [HELPER, "get"], self.env, f"protocol=https\nhost={SERVED_HOST}\n\n"
        )
        start = time.perf_counter()
        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(lambda _: run(), range(callers)))
        elapsed = (time.perf_counter() - start) * 1000
        refreshes = self.provider.counts()["refresh_token"] - before
        if refreshes != 1:
            raise SystemExit(
                f"expected one refresh for {callers} callers, saw {refreshes}"
            )
        return elapsed

    def __exit__(self, *exc: object) -> None:
        self.provider.stop()
        self.tmp.cleanup()


def refresh_paths(rounds: int) -> list[tuple[str, float]]:
    with RefreshRig() as rig:
        single = [rig.timed_refresh(callers=1) for _ in range(rounds)]
        parallel = [rig.timed_refresh(callers=16) for _ in range(rounds)]
    return [
        ("get at expiry, 1 caller (refresh)", statistics.median(single)),
        ("get at expiry, 16 parallel callers (wall)", statistics.median(parallel)),
    ]


def report(rows: list[tuple[str, float]]) -> None:
    base = rows[0][1]
    print(f"{'path':44} {'median ms':>10} {'x baseline':>11}")
    for name, value in rows:
        print(f"{name:44} {value:10.1f} {value / base:11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-refresh", action="store_true", help="skip the rig rows")
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "helper", quiet=1)
    rows = hot_paths(args.repeat)
    if not args.no_refresh:
        rows += refresh_paths(args.rounds)
    report(rows)


if __name__ == "__main__":
    main()
