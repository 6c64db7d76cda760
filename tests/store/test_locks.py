"""Per-key locks between real processes: serialized, crash-proof, bounded."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helper.errors import LockTimeoutError
from helper.store import Record, Store

# Holds the key's lock: logs its start and end, or (hold=forever) waits to die.
HOLDER = """
import os, sys, time
from helper.store import Record, Store

root, log, hold = sys.argv[1:]
key = Record(protocol="https", host="git.example.test", username="alice")
with Store(root=root, kind="file").lock(key, timeout=30):
    with open(log, "a") as out:
        out.write(f"start {os.getpid()}\\n")
    print("locked", flush=True)
    time.sleep(3600 if hold == "forever" else float(hold))
    with open(log, "a") as out:
        out.write(f"end {os.getpid()}\\n")
"""
KEY = Record(protocol="https", host="git.example.test", username="alice")


def holder(root: Path, log: Path, hold: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(log), hold],
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_locked(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    assert process.stdout.readline() == "locked\n"


def test_two_processes_take_turns(tmp_path: Path) -> None:
    log = tmp_path / "log"
    both = [holder(tmp_path / "state", log, "0.3") for _ in range(2)]
    for process in both:
        assert process.wait(timeout=30) == 0
        assert process.stdout is not None
        process.stdout.close()

    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["start", "end", "start", "end"]
    pids = [line.split()[1] for line in log.read_text().splitlines()]
    assert pids[0] == pids[1] != pids[2] == pids[3]


def test_lock_of_a_killed_holder_never_blocks(tmp_path: Path) -> None:
    process = holder(tmp_path / "state", tmp_path / "log", "forever")
    wait_locked(process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.stdout is not None
    process.stdout.close()
    lock_files = list((tmp_path / "state" / "locks").iterdir())
    assert len(lock_files) == 1  # left behind, as flock allows

    start = time.monotonic()
    with Store(root=str(tmp_path / "state"), kind="file").lock(KEY, timeout=5):
        waited = time.monotonic() - start

    assert waited < 1


def test_waiter_gives_up_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = holder(tmp_path / "state", tmp_path / "log", "forever")
    wait_locked(process)
    monkeypatch.setenv("OAUTH_HELPER_LOCK_TIMEOUT", "0.5")
    start = time.monotonic()
    try:
        with (
            pytest.raises(LockTimeoutError) as caught,
            Store(root=str(tmp_path / "state"), kind="file").lock(KEY),
        ):
            pass
    finally:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()

    assert 0.5 <= time.monotonic() - start < 3
    message = str(caught.value)
    assert "\n" not in message
    assert "git.example.test" in message and "0.5 s" in message


def test_invalid_lock_timeout_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTH_HELPER_LOCK_TIMEOUT", "soon")

    with pytest.raises(Exception, match="OAUTH_HELPER_LOCK_TIMEOUT must be a number"):
        Store(root=str(tmp_path / "state"), kind="file").lock(KEY)
