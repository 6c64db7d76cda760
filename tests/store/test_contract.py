"""The contract every store in use on this machine must keep.

Runs against ``file`` and against ``keyring`` backed by a real Secret Service
(gnome-keyring-daemon on a private D-Bus session bus, see conftest.py).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from helper.errors import ProtocolError
from helper.store import Record, Store
from helper.store.sealing import SERVICE

BIG = 16 * 1024


@pytest.fixture(params=["file", "keyring"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each kind, its state folder inside tmp_path."""
    if request.param == "keyring":
        request.getfixturevalue("real_keyring")
    yield Store(root=str(tmp_path / "state"), kind=request.param)


def credential(username: str = "alice", **values: str) -> Record:
    fields = {"protocol": "https", "host": "git.example.test", "username": username}
    fields.update(origin="store", password=f"pw-{username}")
    fields.update(values)
    return Record(**fields)


def secrets(record: Record | None) -> tuple[str, str]:
    assert record is not None
    return record.password, record.oauth_refresh_token


def record_files(st: Store) -> list[Path]:
    return sorted(p for p in Path(st.root, "records").rglob("*") if p.is_file())


def test_round_trip_keeps_16_kb_tokens(store: Store) -> None:
    token, refresh = "a" * BIG, "r" * BIG
    store.save(credential(password=token, oauth_refresh_token=refresh))

    loaded = store.reload(credential())
    assert secrets(loaded) == (token, refresh)
    assert loaded is not None and loaded.kind == store.kind
    text = record_files(store)[0].read_text()
    # Sealed: neither token is on disk in clear; only a 256-bit key is held.
    assert (token in text) is (store.kind == "file")
    assert (refresh in text) is (store.kind == "file")


# Characters str.splitlines() breaks at; only CR, LF and NUL are refused.
ODD_BREAKS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def test_secrets_with_other_line_breaks_round_trip(store: Store) -> None:
    password = f"abc{ODD_BREAKS}def"
    forged = "x\u2028oauth_refresh_token=INJECTED"
    store.save(credential(password=password))
    store.save(credential("bob", password=forged))

    assert secrets(store.reload(credential())) == (password, "")
    assert secrets(store.reload(credential("bob"))) == (forged, "")


def test_a_value_that_cannot_be_written_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(ProtocolError, match="CR, LF or NUL"):
        store.save(credential(password="a\rb"))

    assert not store.has_host("https", "git.example.test")
    assert record_files(store) == []


@pytest.mark.usefixtures("real_keyring")
def test_keyring_holds_only_a_32_byte_key(tmp_path: Path) -> None:
    import base64

    import keyring

    store = Store(root=str(tmp_path / "state"), kind="keyring")
    store.save(credential(password="p" * BIG))

    held = keyring.get_password(SERVICE, credential().key_hash)
    assert held is not None and len(base64.b64decode(held)) == 32


def test_overwrite_replaces_the_record(store: Store) -> None:
    store.save(credential(password="old", oauth_refresh_token="old-refresh"))
    store.save(credential(password="new", password_expiry_utc="4102444800"))

    loaded = store.reload(credential())
    assert secrets(loaded) == ("new", "")
    assert loaded is not None and loaded.expiry() == 4102444800
    assert len(record_files(store)) == 1


def test_remove_deletes_the_record_and_its_key(store: Store) -> None:
    store.save(credential())
    saved = next(store.candidates("https", "git.example.test"))

    assert store.remove(saved) is True
    assert store.reload(credential()) is None
    assert record_files(store) == []
    assert store.remove(saved) is False
    if store.kind == "keyring":
        import keyring

        assert keyring.get_password(SERVICE, saved.key_hash) is None


def test_several_usernames_per_host_coexist(store: Store) -> None:
    for name in ("alice", "bob", "carol"):
        store.save(credential(name))

    found = {r.username: r for r in store.candidates("https", "git.example.test")}
    assert sorted(found) == ["alice", "bob", "carol"]
    for name, record in found.items():
        assert secrets(store.load_secrets(record)) == (f"pw-{name}", "")


def test_hosts_are_case_insensitive_and_protocols_apart(store: Store) -> None:
    store.save(credential(host="Git.Example.TEST"))

    assert [r.username for r in store.candidates("https", "git.example.test")] == [
        "alice"
    ]
    assert list(store.candidates("http", "git.example.test")) == []


@pytest.mark.parametrize(
    ("host", "username"),
    [
        ("git.example.test", "../../etc"),
        ("evil.test/../../x", "alice"),
        ("/tmp", "/etc/passwd"),
        ("host.test:8443", "..\\..\\win"),
    ],
)
def test_no_host_or_username_becomes_a_path(
    store: Store, tmp_path: Path, host: str, username: str
) -> None:
    store.save(credential(username, host=host))
    with store.lock(credential(username, host=host)):
        pass

    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    for path in Path(store.root).rglob("*"):
        relative = path.relative_to(store.root)
        for part in relative.parts:
            assert part in ("records", "locks") or _is_hash_name(part), relative
    loaded = store.reload(credential(username, host=host))
    assert loaded is not None and loaded.username == username


def _is_hash_name(name: str) -> bool:
    stem = name.removesuffix(".lock")
    return len(stem) == 40 and all(c in "0123456789abcdef" for c in stem)


def test_files_are_0600_and_folders_0700(store: Store) -> None:
    old = os.umask(0)  # the modes must not depend on a lenient umask
    try:
        store.save(credential())
        with store.lock(credential()):
            pass
    finally:
        os.umask(old)

    for path in [Path(store.root), *Path(store.root).rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_listing_never_unseals(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store.save(credential("alice", oauth_refresh_token="refresh-a"))
    store.save(credential("bob", host="other.example.test"))
    # From here on any keyring call fails: listing must not need one.
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")

    listed = {r.username: r for r in store.all_records()}

    assert sorted(listed) == ["alice", "bob"]
    for record in listed.values():
        assert record.kind == store.kind
        if store.kind == "keyring":
            assert record.sealed and not record.password
            assert not record.oauth_refresh_token
        else:
            assert record.password and not record.sealed
