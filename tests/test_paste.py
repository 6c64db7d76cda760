"""Signing in from a machine the browser cannot reach: the address it ended on,
pasted on the terminal.

The real helper runs with a pseudo-terminal as its controlling terminal and
its stderr, as under git in an SSH session; stdin and stdout are pipes, as git
makes them. Headless Chromium walks the rig provider's pages but reaches only
the provider, as a browser on the user's laptop would, so the redirect to the
helper's loopback listener fails there and the test pastes its URL.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import termios
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from rig.browser import approve
from rig.client import git, run_helper
from rig.idp import Provider

FORGE = "https://forge.example.test"
AUTHORIZATION_URL = re.compile(r"open this URL to sign in to \S+: (https://\S+)")
PROMPT = "paste the address it ended on here and press Enter"
REFUSED = "that address was not accepted"
# Over SSH: the browser, wherever it runs, cannot come back to this machine.
SSH = {"SSH_CONNECTION": "192.0.2.10 50022 192.0.2.20 22"}


class Terminal:
    """A helper process whose controlling terminal, and stderr, is a pty.

    Echo is off, so everything read from the pty is what the helper wrote.
    """

    def __init__(self, argv: list[str], env: dict[str, str], stdin: str = "") -> None:
        self.master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        protocol, feed = os.pipe()
        # setsid --ctty takes fd 0 (the pty) as controlling terminal; bash
        # (dash takes fds 0-9 only) then gives the helper the protocol pipe
        # as stdin, as git does.
        shell = f'exec "$@" <&{protocol} {protocol}<&-'
        self.process = subprocess.Popen(
            ["setsid", "--ctty", "--wait", "bash", "-c", shell, "bash", *argv],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            pass_fds=(protocol,),
        )
        for fd in (slave, protocol):
            os.close(fd)
        with os.fdopen(feed, "w") as pipe:
            pipe.write(stdin)
        self.text = ""
        self._mark = 0  # where the next expect() starts looking

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        os.close(self.master)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 30) -> str:
        """Read until *pattern* shows up past the last match; its group or all."""
        deadline = time.monotonic() + timeout
        while not (found := re.compile(pattern).search(self.text, self._mark)):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"no {pattern!r} on the terminal: {self.text}")
        self._mark = found.end()
        return found.group(found.lastindex or 0)

    def type(self, line: str) -> None:
        """Type *line* and Enter, as a person pasting would."""
        os.write(self.master, line.encode() + b"\n")

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        """Exit status, stdout and everything shown on the terminal."""
        assert self.process.stdout is not None
        out = self.process.stdout.read().decode()
        status = self.process.wait(timeout=timeout)
        while self._read(1):
            pass
        return status, out, self.text

    def _read(self, timeout: float) -> bool:
        """Add what the helper wrote; False once it is gone or nothing came."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        try:
            chunk = os.read(self.master, 4096) if ready else b""
        except OSError:  # EIO: every slave descriptor is closed
            chunk = b""
        # The terminal turns each "\n" into "\r\n" (ONLCR).
        self.text += chunk.decode(errors="replace").replace("\r\n", "\n")
        return bool(chunk)


def sign_in_elsewhere(term: Terminal) -> tuple[str, bool]:
    """Walk the sign-in in a browser that cannot reach the helper.

    The address it ended on, and whether the helper was still waiting then.
    """
    url = term.expect(AUTHORIZATION_URL)
    term.expect(PROMPT)
    address = approve(url, provider_only=True)
    return address, term.process.poll() is None


def serve(env: dict[str, str], provider: Provider, **extra: str) -> None:
    """git config making the helper sign in to FORGE at the rig provider."""
    settings = {
        "oauthIssuer": provider.issuer,
        "oauthClientId": provider.client_id,
        "oauthScopes": "openid git",
        "oauthFlow": "browser",
        **extra,
    }
    for key, value in settings.items():
        git(env, "config", "--global", f"credential.{FORGE}.{key}", value)


def code_of(address: str) -> str:
    (code,) = parse_qs(urlsplit(address).query)["code"]
    return code


def with_state(address: str, state: str) -> str:
    parts = urlsplit(address)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, "state": state})))


def stored_hosts(env: dict[str, str]) -> list[object]:
    done = run_helper(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    return [row["host"] for row in json.loads(done.stdout)]


@pytest.fixture
def env(helper_env: dict[str, str]) -> dict[str, str]:
    """The helper's environment over SSH, with a browser that "starts" elsewhere.

    BROWSER=true starts and exits at once: only SSH_CONNECTION tells the
    helper that this browser cannot come back to its listener. Debug output
    is on: not even it may show the code.
    """
    return {**helper_env, **SSH, "BROWSER": "true", "OAUTH_HELPER_DEBUG": "1"}


def paste_sign_in(
    argv: list[str], env: dict[str, str]
) -> tuple[str, bool, tuple[int, str, str]]:
    """Run *argv* on a terminal, sign in elsewhere, paste the address there.

    The address, whether the helper was still waiting unanswered, and the
    helper's (exit status, stdout, terminal output).
    """
    with Terminal(argv, env) as term:
        address, unanswered = sign_in_elsewhere(term)
        term.type(address)
        return address, unanswered, term.finish()


def test_a_pasted_address_signs_in_over_ssh(
    env: dict[str, str], provider: Provider
) -> None:
    serve(env, provider)
    argv = ["oauth-helper", "token", f"{FORGE}/team/repo.git"]
    address, unanswered, (status, out, shown) = paste_sign_in(argv, env)

    assert unanswered
    assert status == 0, shown
    assert "received a pasted address" in shown
    assert "loopback: GET" not in shown  # the browser never reached the listener
    token = out.strip()
    assert provider.introspect(token)["active"] is True
    assert provider.counts()["authorization_code"] == 1
    assert stored_hosts(env) == [FORGE]
    assert shown.count(PROMPT) == 1
    assert code_of(address) not in shown
    assert token not in shown


def test_a_wrong_paste_is_refused_and_the_wait_goes_on(
    env: dict[str, str], provider: Provider
) -> None:
    serve(env, provider)
    request = "protocol=https\nhost=forge.example.test\n\n"
    with Terminal(["oauth-helper", "get"], env, stdin=request) as term:
        address, unanswered = sign_in_elsewhere(term)
        term.type(with_state(address, "a-state-from-another-sign-in"))
        refusal = term.expect(rf"{REFUSED}[^\n]*\n")
        still_waiting = term.process.poll() is None
        term.type(f"  {address}\t ")
        status, out, shown = term.finish()

    assert unanswered and still_waiting
    assert "stale or was not started here" in refusal
    assert status == 0, shown
    fields = dict(line.split("=", 1) for line in out.splitlines())
    assert provider.introspect(fields["password"])["active"] is True
    assert provider.counts()["authorization_code"] == 1
    assert shown.count(REFUSED) == 1
    assert code_of(address) not in shown


def test_without_a_terminal_there_is_no_paste_prompt(
    helper_env: dict[str, str], provider: Provider, tmp_path: Path
) -> None:
    # No browser starts (open_url is False): only the terminal is missing for
    # the paste. The real browser then signs in through the loopback listener.
    env = {**helper_env, "BROWSER": str(tmp_path / "no-such-browser")}
    serve(env, provider)
    with subprocess.Popen(
        ["oauth-helper", "token", FORGE],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # no controlling terminal
    ) as proc:
        assert proc.stderr is not None
        shown = [proc.stderr.readline()]
        while not (found := AUTHORIZATION_URL.search(shown[-1])) and shown[-1]:
            shown.append(proc.stderr.readline())
        assert found, "".join(shown)
        approve(found.group(1))
        out, rest = proc.communicate(timeout=60)
    shown.append(rest)

    assert proc.returncode == 0, "".join(shown)
    assert provider.introspect(out.strip())["active"] is True
    assert "paste" not in "".join(shown)


def test_a_pasted_address_signs_in_through_msal(
    helper_env: dict[str, str], tenant: Provider, tmp_path: Path
) -> None:
    # No SSH here: the paste is offered because no browser could be started.
    browser = str(tmp_path / "no-such-browser")
    env = {**helper_env, "BROWSER": browser, "OAUTH_HELPER_DEBUG": "1"}
    serve(env, tenant, oauthAuthority=tenant.issuer)
    argv = ["oauth-helper", "token", FORGE]
    address, unanswered, (status, out, shown) = paste_sign_in(argv, env)

    assert unanswered
    assert status == 0, shown
    assert "received a pasted address" in shown
    assert tenant.introspect(out.strip())["active"] is True
    assert code_of(address) not in shown
