"""Atomic writes and owner-only folders, checked with real processes."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helper.errors import StoreError
from helper.store import Record, Store, files

# A writer that saves two large versions of one record, turn by turn, forever.
WRITER = """
import sys
from helper.store import Record, Store

store = Store(root=sys.argv[1], kind="file")
size = int(sys.argv[2])
versions = [
    Record(protocol="https", host="git.example.test", username="alice",
           password=letter * size, oauth_refresh_token=letter.upper() * size)
    for letter in "ab"
]
store.save(versions[0])
print("ready", flush=True)
while True:
    for version in versions:
        store.save(version)
"""
SIZE = 2 * 1024 * 1024


def test_sigkill_mid_write_leaves_old_or_new_record(tmp_path: Path) -> None:
    root = tmp_path / "state"
    rng = random.Random(20240601)  # noqa: S311 - kill moments, not secrets
    seen: set[str] = set()
    strays = 0
    for _ in range(15):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(SIZE)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()

        records = list(
            Store(root=str(root), kind="file").candidates("https", "git.example.test")
        )
        assert len(records) == 1
        letter = records[0].password[:1]
        assert records[0].password == letter * SIZE
        assert records[0].oauth_refresh_token == letter.upper() * SIZE
        seen.add(letter)
        strays += len(list(root.rglob(files.TEMP_PREFIX + "*")))
    # Proof the kills landed mid-write (a temp file was left behind) and at
    # different moments (both versions were found).
    assert strays > 0
    assert seen == {"a", "b"}


def test_stray_temp_files_are_ignored_and_old_ones_cleaned(tmp_path: Path) -> None:
    store = Store(root=str(tmp_path / "state"), kind="file")
    record = Record(protocol="https", host="git.example.test", password="pw")
    store.save(record)
    folder = next((tmp_path / "state" / "records").iterdir())
    old = folder / f"{files.TEMP_PREFIX}0123"
    new = folder / f"{files.TEMP_PREFIX}4567"
    for stray in (old, new):
        stray.write_bytes(b"oauth-helper-record=1\nhost=half-writ")
    os.utime(old, (time.time() - 7200, time.time() - 7200))

    assert [r.password for r in store.candidates("https", "git.example.test")] == ["pw"]
    store.save(record.copy(password="pw2"))
    assert not old.exists()
    assert new.exists()  # maybe another writer's file, still being written


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o720, 0o702])
def test_folder_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    root = tmp_path / "state"
    root.mkdir()
    root.chmod(mode)

    with pytest.raises(StoreError) as caught:
        Store(root=str(root), kind="file").save(Record(protocol="https", host="h"))
    assert f"chmod 700 '{root}'" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (root / "records").exists()


def test_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("only root can give a folder to another user")
    root = tmp_path / "state"
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)

    with pytest.raises(StoreError, match="belongs to another user"):
        Store(root=str(root), kind="file").save(Record(protocol="https", host="h"))


def test_state_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OAUTH_HELPER_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert files.state_dir() == str(tmp_path / "xdg" / "oauth-helper")

    monkeypatch.setenv("OAUTH_HELPER_HOME", str(tmp_path / "mine"))
    assert files.state_dir() == str(tmp_path / "mine")


def saved(tmp_path: Path) -> tuple[Store, Record, Path]:
    store = Store(root=str(tmp_path / "state"), kind="file")
    record = store.save(
        Record(protocol="https", host="git.example.test", username="u", password="pw")
    )
    path = tmp_path / "state" / "records"
    [file] = [p for p in path.rglob("*") if p.is_file()]
    return store, record, file


def test_a_symlink_in_place_of_a_record_is_set_aside_unfollowed(
    tmp_path: Path,
) -> None:
    store, record, file = saved(tmp_path)
    target = tmp_path / "elsewhere"
    target.write_text(file.read_text())
    target.chmod(0o644)
    file.unlink()
    file.symlink_to(target)

    assert store.stored(record) is None
    # Neither read through nor made owner-only: the link was never opened.
    assert target.stat().st_mode & 0o777 == 0o644
    assert not file.is_symlink()
    assert (file.parent / f".corrupt-{file.name}").is_symlink()


def test_a_fifo_in_place_of_a_record_never_blocks(tmp_path: Path) -> None:
    store, record, file = saved(tmp_path)
    file.unlink()
    os.mkfifo(file, 0o600)

    started = time.monotonic()
    assert store.stored(record) is None
    assert time.monotonic() - started < 2
    assert not file.exists()


def test_a_record_past_the_size_limit_is_set_aside_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, record, file = saved(tmp_path)
    monkeypatch.setattr(files, "RECORD_LIMIT", 1024)
    with file.open("ab") as stream:
        stream.truncate(4096)

    assert store.stored(record) is None
    assert not file.exists()


def test_a_credential_too_large_to_read_back_is_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, record, _ = saved(tmp_path)
    monkeypatch.setattr(files, "RECORD_LIMIT", 4096)

    with pytest.raises(StoreError, match="too large to store"):
        store.save(record.copy(password="x" * 4096))

    loaded = store.stored(record)
    assert loaded is not None and loaded.password == "pw"


def outside_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder outside the store holding one 0644 file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_text("not a record\n")
    (outside / "notes.txt").chmod(0o644)
    return outside, outside / "notes.txt"


@pytest.mark.parametrize("linked", ["host folder", "records folder"])
def test_a_linked_folder_inside_the_store_is_refused_and_left_alone(
    tmp_path: Path, linked: str
) -> None:
    store, record, file = saved(tmp_path)
    outside, victim = outside_folder(tmp_path)
    link = file.parent if linked == "host folder" else file.parent.parent
    if linked == "records folder":
        # Shaped like the records folder: a host folder holding one file.
        host = outside / file.parent.name
        host.mkdir(mode=0o700)
        victim = victim.rename(host / file.name)
    shutil.rmtree(link)
    link.symlink_to(outside)

    with pytest.raises(StoreError, match="is not a folder of oauth-helper's"):
        list(store.all_records())
    with pytest.raises(StoreError, match="is not a folder of oauth-helper's"):
        store.save(record)

    # Neither made owner-only, nor set aside, nor replaced.
    assert victim.read_text() == "not a record\n"
    assert victim.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in victim.parent.iterdir()] == [victim.name]


def test_the_state_folder_itself_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "state").symlink_to(real)
    store = Store(root=str(tmp_path / "state"), kind="file")

    saved_record = store.save(
        Record(protocol="https", host="git.example.test", username="u", password="p")
    )

    loaded = store.stored(saved_record)
    assert loaded is not None and loaded.password == "p"


def test_a_hard_link_in_a_records_place_is_set_aside_untouched(
    tmp_path: Path,
) -> None:
    store, record, file = saved(tmp_path)
    _, victim = outside_folder(tmp_path)
    victim.write_text(file.read_text())
    victim.chmod(0o644)
    file.unlink()
    os.link(victim, file)

    assert store.stored(record) is None
    assert victim.stat().st_mode & 0o777 == 0o644
    assert not file.exists()


def test_a_folder_in_a_records_place_is_set_aside(tmp_path: Path) -> None:
    store, record, file = saved(tmp_path)
    file.unlink()
    file.mkdir(mode=0o700)

    assert store.stored(record) is None
    assert list(store.all_records()) == []
    assert (file.parent / f".corrupt-{file.name}").is_dir()


def test_a_record_copied_into_another_hosts_folder_answers_nothing(
    tmp_path: Path,
) -> None:
    store, _, _ = saved(tmp_path)
    other = store.save(
        Record(protocol="https", host="b.example.test", username="u", password="B")
    )
    [b_file] = (tmp_path / "state" / "records").glob(f"*/{other.key_hash}")
    a_folder = next(
        p for p in (tmp_path / "state" / "records").iterdir() if p != b_file.parent
    )
    shutil.copy(b_file, a_folder / other.key_hash)

    assert [r.password for r in store.candidates("https", "git.example.test")] == ["pw"]
    assert not (a_folder / other.key_hash).exists()
