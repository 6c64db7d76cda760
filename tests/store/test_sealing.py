"""The keyring store through the real executable, working and failing.

Failures are real: a bus address with nothing behind it, a socket that
accepts and never answers, a keyring backend (testkeyrings.py) that hangs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import HERE, isolated_env, request, run_helper

HOST = "git.example.test"


def keyring_env(tmp_path: Path, store: str, **extra: str) -> dict[str, str]:
    """A served host (so store and get run fully) with store *store*."""
    env = isolated_env(tmp_path, store=store)
    Path(env["GIT_CONFIG_GLOBAL"]).write_text(
        f'[credential "https://{HOST}"]\n\toauthClientId = test-client\n'
    )
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path}/no-bus-here"
    env.update(extra)
    return env


def test_backend(name: str, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(HERE), "PYTHON_KEYRING_BACKEND": name, **extra}


test_backend.__test__ = False  # type: ignore[attr-defined]


def store(env: dict[str, str], username: str) -> tuple[int, str]:
    stored = request(
        protocol="https", host=HOST, username=username, password=f"pw-{username}"
    )
    done = run_helper("store", stored, env)
    assert done.stdout == ""
    return done.returncode, done.stderr


def record_texts(env: dict[str, str]) -> list[str]:
    records = Path(env["OAUTH_HELPER_HOME"], "records")
    return [p.read_text() for p in records.rglob("*") if p.is_file()]


def test_real_secret_service_round_trip(secret_service: str, tmp_path: Path) -> None:
    env = keyring_env(tmp_path, "keyring", DBUS_SESSION_BUS_ADDRESS=secret_service)

    assert store(env, "alice") == (0, "")
    done = run_helper("get", request(protocol="https", host=HOST), env)

    assert (done.returncode, done.stderr) == (0, "")
    assert "username=alice\npassword=pw-alice\n" in done.stdout
    [text] = record_texts(env)
    assert "sealed=" in text and "pw-alice" not in text and "kind=keyring" in text


def test_auto_without_dbus_falls_back_to_file_with_one_warning(
    tmp_path: Path,
) -> None:
    env = keyring_env(tmp_path, "auto")

    code, stderr = store(env, "alice")
    assert code == 0
    assert len(stderr.splitlines()) == 1
    assert "the keyring is unusable" in stderr and "OAUTH_HELPER_STORE=file" in stderr
    assert Path(env["OAUTH_HELPER_HOME"], "keyring-unavailable").exists()
    # The marker holds the fallback: no second probe, no second warning.
    assert store(env, "bob") == (0, "")
    assert all("kind=file" in t and "pw-" in t for t in record_texts(env))


@pytest.fixture
def silent_bus(tmp_path: Path) -> Iterator[str]:
    """A D-Bus address whose socket accepts connections and never answers."""
    path = tmp_path / "silent-bus"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"unix:path={path}"
    stop.set()
    thread.join()
    for connection in [*accepted, server]:
        connection.close()


def test_silent_bus_is_bounded_by_the_keyring_timeout(
    tmp_path: Path, silent_bus: str
) -> None:
    env = keyring_env(
        tmp_path,
        "auto",
        DBUS_SESSION_BUS_ADDRESS=silent_bus,
        OAUTH_HELPER_KEYRING_TIMEOUT="0.5",
    )

    start = time.monotonic()
    code, stderr = store(env, "alice")

    assert time.monotonic() - start < 4
    assert code == 0 and len(stderr.splitlines()) == 1
    assert "did not answer within 0.5 s" in stderr
    assert ["kind=file" in t for t in record_texts(env)] == [True]


def test_hanging_backend_with_keyring_store_is_one_clear_error(
    tmp_path: Path,
) -> None:
    backend = test_backend("testkeyrings.HangingKeyring")
    env = keyring_env(tmp_path, "keyring", OAUTH_HELPER_KEYRING_TIMEOUT="1", **backend)

    start = time.monotonic()
    code, stderr = store(env, "alice")

    assert time.monotonic() - start < 4
    assert code == 1
    assert stderr.count("\n") == 1
    assert "OAUTH_HELPER_STORE=keyring but the keyring is unusable" in stderr
    assert "did not answer within 1 s" in stderr
    assert record_texts(env) == []


def test_keyring_store_without_dbus_is_one_clear_error(tmp_path: Path) -> None:
    env = keyring_env(tmp_path, "keyring")

    code, stderr = store(env, "alice")

    assert code == 1
    assert stderr.count("\n") == 1
    assert "no keyring backend is available" in stderr
    assert "set OAUTH_HELPER_STORE=file" in stderr
    assert record_texts(env) == []


def test_hanging_keyring_costs_one_timeout_however_many_records(
    tmp_path: Path,
) -> None:
    keys = {"TEST_KEYRING_FILE": str(tmp_path / "keys.json")}
    env = keyring_env(
        tmp_path, "keyring", **test_backend("testkeyrings.JsonFileKeyring", **keys)
    )
    for name in ("alice", "bob", "carol"):
        assert store(env, name) == (0, "")
    env.update(
        test_backend("testkeyrings.HangingKeyring"), OAUTH_HELPER_KEYRING_TIMEOUT="1.5"
    )

    start = time.monotonic()
    done = run_helper("get", request(protocol="https", host=HOST), env)

    assert time.monotonic() - start < 2.9  # three records, one timeout
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr.count("\n") == 1
    assert "did not answer within 1.5 s" in done.stderr


def age_marker(env: dict[str, str], seconds: float) -> Path:
    marker = Path(env["OAUTH_HELPER_HOME"], "keyring-unavailable")
    then = time.time() - seconds
    os.utime(marker, (then, then))
    return marker


def test_a_keyring_that_timed_out_is_tried_again_minutes_later(
    tmp_path: Path, silent_bus: str
) -> None:
    env = keyring_env(
        tmp_path,
        "auto",
        DBUS_SESSION_BUS_ADDRESS=silent_bus,
        OAUTH_HELPER_KEYRING_TIMEOUT="0.5",
    )
    code, stderr = store(env, "alice")
    assert code == 0 and "tried again in 10 minutes" in stderr
    keys = {"TEST_KEYRING_FILE": str(tmp_path / "keys.json")}
    env.update(test_backend("testkeyrings.JsonFileKeyring", **keys))

    # Within the back-off: a plain file, without another try or warning.
    assert store(env, "bob") == (0, "")
    age_marker(env, 601)
    # After it: the keyring works again and seals the record.
    assert store(env, "carol") == (0, "")

    kinds = sorted(t.split("kind=")[1].split("\n")[0] for t in record_texts(env))
    assert kinds == ["file", "file", "keyring"]


def test_no_keyring_at_all_is_not_tried_again_for_a_day(tmp_path: Path) -> None:
    env = keyring_env(tmp_path, "auto")
    code, stderr = store(env, "alice")
    assert code == 0 and "tried again in 24 hours" in stderr
    keys = {"TEST_KEYRING_FILE": str(tmp_path / "keys.json")}
    env.update(test_backend("testkeyrings.JsonFileKeyring", **keys))

    age_marker(env, 601)
    assert store(env, "bob") == (0, "")
    age_marker(env, 24 * 3600 + 1)
    assert store(env, "carol") == (0, "")

    kinds = sorted(t.split("kind=")[1].split("\n")[0] for t in record_texts(env))
    assert kinds == ["file", "file", "keyring"]


@pytest.mark.parametrize("value", ["abc", "-1", "inf", "nan"])
def test_a_bad_keyring_timeout_is_one_line_and_no_fallback(
    tmp_path: Path, value: str
) -> None:
    keys = {"TEST_KEYRING_FILE": str(tmp_path / "keys.json")}
    env = keyring_env(
        tmp_path, "auto", **test_backend("testkeyrings.JsonFileKeyring", **keys)
    )
    assert store(env, "alice") == (0, "")
    env["OAUTH_HELPER_KEYRING_TIMEOUT"] = value

    code, stderr = store(env, "alice")

    assert (code, stderr) == (
        1,
        "oauth-helper: OAUTH_HELPER_KEYRING_TIMEOUT must be a number of seconds\n",
    )
    assert not Path(env["OAUTH_HELPER_HOME"], "keyring-unavailable").exists()
    [text] = record_texts(env)
    assert "kind=keyring" in text


@pytest.mark.parametrize("kind", ["fifo", "folder", "link loop", "huge"])
def test_anything_odd_in_the_markers_place_neither_hangs_nor_crashes(
    tmp_path: Path, kind: str
) -> None:
    env = keyring_env(tmp_path, "auto")
    state = Path(env["OAUTH_HELPER_HOME"])
    state.mkdir(mode=0o700)
    marker = state / "keyring-unavailable"
    if kind == "fifo":
        os.mkfifo(marker, 0o600)
    elif kind == "folder":
        marker.mkdir(mode=0o700)
    elif kind == "link loop":
        marker.symlink_to(marker)
    else:
        with marker.open("wb") as stream:
            stream.truncate(64 * 1024 * 1024)

    started = time.monotonic()
    code, stderr = store(env, "alice")

    assert time.monotonic() - started < 10
    assert code == 0, stderr
    assert "internal error" not in stderr
    assert ["kind=file" in t for t in record_texts(env)] == [True]
