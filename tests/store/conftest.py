"""Fixtures for the store: a real Secret Service and isolated environments.

The Secret Service is Debian's gnome-keyring-daemon on a private D-Bus session
bus (its own socket, its own HOME): nothing of the caller's desktop is used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import dropped

SECRETS_NAME = "org.freedesktop.secrets"


@pytest.fixture(scope="session")
def secret_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a private session bus with an unlocked gnome-keyring."""
    base = tmp_path_factory.mktemp("secret-service")
    env = _daemon_env(base)
    bus = subprocess.Popen(
        [
            "dbus-daemon",
            "--session",
            "--nofork",
            "--print-address=1",
            f"--address=unix:path={base}/bus",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert bus.stdout is not None
    env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
    daemon = _start_keyring_daemon(env)
    try:
        _wait_for_owner(env["DBUS_SESSION_BUS_ADDRESS"], SECRETS_NAME)
        yield env["DBUS_SESSION_BUS_ADDRESS"]
    finally:
        for process in (daemon, bus):
            process.terminate()
            process.wait(timeout=10)
        bus.stdout.close()


def _daemon_env(base: Path) -> dict[str, str]:
    # The daemons get a HOME of their own, so the login keyring they create
    # (and anything D-Bus activation starts) never touches the real one.
    env = {k: v for k, v in os.environ.items() if not dropped(k)}
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    env.update(
        HOME=str(base / "home"),
        XDG_DATA_HOME=str(base / "home" / "share"),
        XDG_CONFIG_HOME=str(base / "home" / "config"),
        XDG_RUNTIME_DIR=str(runtime),
    )
    return env


def _start_keyring_daemon(env: dict[str, str]) -> subprocess.Popen[bytes]:
    # --unlock reads the login keyring's password on stdin and creates that
    # keyring unlocked, so no prompt is ever needed.
    daemon = subprocess.Popen(
        ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert daemon.stdin is not None
    daemon.stdin.write(b"test-login-password")
    daemon.stdin.close()
    return daemon


def _wait_for_owner(address: str, name: str, limit: float = 10) -> None:
    # Waiting for the name matters: a call before it is owned would make the
    # bus activate a second daemon from /usr/share/dbus-1/services.
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    deadline = time.monotonic() + limit
    with open_dbus_connection(bus=address) as connection:
        while time.monotonic() < deadline:
            reply = connection.send_and_get_reply(message_bus.NameHasOwner(name))
            if reply.body[0]:
                return
            time.sleep(0.05)
    pytest.fail(f"gnome-keyring-daemon did not own {name} within {limit:g} s")


@pytest.fixture(scope="session")
def chosen_backend(
    secret_service: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The backend keyring itself picks on this machine when the bus is there."""
    env = {k: v for k, v in os.environ.items() if not dropped(k)}
    env["DBUS_SESSION_BUS_ADDRESS"] = secret_service
    env["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("keyring-config"))
    code = "import keyring; k = keyring.get_keyring(); print(type(k).__module__)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def real_keyring(
    chosen_backend: str, secret_service: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    """keyring pointed at the private Secret Service, for this test only."""
    import keyring
    from keyring.backends import SecretService

    # A plaintext or "fail" backend here would make every test meaningless.
    assert chosen_backend == "keyring.backends.SecretService"
    # keyring detects its backend once per process and caches what it found,
    # so the test sets the one detection chose, and puts the old one back.
    previous = keyring.get_keyring()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service)
    backend = SecretService.Keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)
