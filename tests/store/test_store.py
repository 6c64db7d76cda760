"""The Store through the real executable: damage, shared machines, cost."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helper.store import Record, Store
from helper.store.records import host_hash

from .helpers import isolated_env, request, run_helper

HOST = "git.example.test"


def seed(env: dict[str, str], *usernames: str) -> Store:
    st = Store(root=env["OAUTH_HELPER_HOME"], kind="file")
    for name in usernames:
        st.save(
            Record(protocol="https", host=HOST, username=name, password=f"pw-{name}")
        )
    return st


def record_path(st: Store, username: str) -> Path:
    key = Record(protocol="https", host=HOST, username=username).key_hash
    return Path(st.root, "records", host_hash("https", HOST), key)


def get(env: dict[str, str], **fields: str) -> subprocess.CompletedProcess[str]:
    return run_helper("get", request(protocol="https", host=HOST, **fields), env)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _replace_expiry(path: Path) -> None:
    path.write_text(path.read_text() + "password_expiry_utc=soon\n")


DAMAGE = {
    "truncated": _truncate,
    "garbage": lambda p: p.write_bytes(os.urandom(300)),
    "not utf-8": lambda p: p.write_bytes(b"oauth-helper-record=1\nusername=\xff\n"),
    "bad expiry": _replace_expiry,
    "empty": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_corrupt_record_reported_once_moved_aside_then_replaced(
    tmp_path: Path, damage: object
) -> None:
    env = isolated_env(tmp_path)
    st = seed(env, "alice")
    path = record_path(st, "alice")
    damage(path)  # type: ignore[operator]

    first = get(env, username="alice")
    second = get(env, username="alice")

    assert (first.returncode, first.stdout) == (0, "")
    assert len(first.stderr.splitlines()) == 1
    assert "unreadable stored record" in first.stderr
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert not path.exists()
    assert (path.parent / f".corrupt-{path.name}").exists()
    stored = request(protocol="https", host=HOST, username="alice", password="new")
    assert run_helper("store", stored, env).returncode == 0
    assert "password=new" in get(env, username="alice").stdout


def test_record_under_another_keys_name_is_not_trusted(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    st = seed(env, "alice", "bob")
    # bob's file copied over alice's: it must not answer for alice.
    record_path(st, "alice").write_bytes(record_path(st, "bob").read_bytes())

    done = get(env, username="alice")

    assert (done.returncode, done.stdout) == (0, "")
    assert "unreadable stored record" in done.stderr
    assert "password=pw-bob" in get(env, username="bob").stdout


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o705])
def test_state_folder_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    env = isolated_env(tmp_path)
    seed(env, "alice")
    Path(env["OAUTH_HELPER_HOME"]).chmod(mode)

    done = get(env)
    stored = run_helper(
        "store", request(protocol="https", host=HOST, username="x", password="y"), env
    )

    for result in (done, stored):
        assert (result.returncode, result.stdout) == (1, "")
        assert len(result.stderr.splitlines()) == 1
        assert f"chmod 700 '{env['OAUTH_HELPER_HOME']}'" in result.stderr


def test_a_host_folder_open_to_others_is_refused(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    st = seed(env, "alice")
    folder = record_path(st, "alice").parent
    folder.chmod(0o777)

    done = get(env)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        f"oauth-helper: {folder} is open to other users; fix it with: "
        f"chmod 700 '{folder}'"
    ]


def test_status_refuses_an_open_state_folder_too(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    seed(env, "alice")
    Path(env["OAUTH_HELPER_HOME"]).chmod(0o777)

    done = run_helper("status", "", env)

    assert done.returncode == 1
    assert "is open to other users" in done.stderr
    assert "alice" not in done.stdout


def test_a_record_readable_by_others_is_made_owner_only(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    st = seed(env, "alice")
    path = record_path(st, "alice")
    path.chmod(0o644)

    done = get(env)

    assert (done.returncode, done.stdout) == (0, "username=alice\npassword=pw-alice\n")
    assert "was readable by other users; made it owner-only" in done.stderr
    assert path.stat().st_mode & 0o777 == 0o600


# Runs the real `get` with an audit hook recording every folder listed and
# every file opened (sys.addaudithook observes; it changes nothing).
AUDITED_GET = """
import sys
seen = {"listed": [], "opened": []}
def hook(event, args):
    if event in ("os.listdir", "os.scandir"):
        seen["listed"].append(str(args[0]))
    elif event == "open" and isinstance(args[0], str):
        seen["opened"].append(args[0])
sys.addaudithook(hook)
from helper.entry import main
code = main(["get"])
seen["modules"] = sorted(sys.modules)
seen["code"] = code
import json  # only now: the helper itself must not need it
with open(sys.argv[1], "w") as out:
    json.dump(seen, out)
"""
FAST_PATH_FORBIDDEN = (
    "logging",
    "typing",
    "hashlib",
    "subprocess",
    "json",
    "dataclasses",
    "filelock",
    "keyring",
    "cryptography",
    # The standard library's slow starters: re (with enum), urllib.parse (with
    # ipaddress) and even __future__ each cost a visible share of a cache hit.
    "re",
    "enum",
    "urllib.parse",
    "ipaddress",
    "__future__",
)


def audited_get(env: dict[str, str], report: Path) -> tuple[dict[str, Any], str]:
    """What a real ``get`` for HOST listed, opened and loaded; and its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", AUDITED_GET, str(report)],
        input=request(protocol="https", host=HOST),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seen: dict[str, Any] = json.loads(report.read_text())
    return seen, done.stdout


@pytest.fixture(scope="module")
def crowded_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A state folder with 10,000 hosts, one record each, and ours."""
    tmp = tmp_path_factory.mktemp("crowded")
    env = isolated_env(tmp)
    records = Path(env["OAUTH_HELPER_HOME"], "records")
    records.mkdir(parents=True, mode=0o700)
    Path(env["OAUTH_HELPER_HOME"]).chmod(0o700)
    for n in range(10_000):
        _write_plain(records, Record(protocol="https", host=f"h{n}.test", password="p"))
    seed(env, "alice")
    return env


def _write_plain(records: Path, record: Record) -> None:
    # Straight to disk, without the fsync of a real save: setup speed only.
    folder = records / host_hash(record.protocol, record.host)
    folder.mkdir(mode=0o700)
    (folder / record.key_hash).write_text(record.to_text())


def test_cache_hit_lists_only_its_host_and_takes_no_lock(
    crowded_env: dict[str, str], tmp_path: Path
) -> None:
    seen, _ = audited_get(crowded_env, tmp_path / "audit.json")

    state = crowded_env["OAUTH_HELPER_HOME"]
    assert seen["code"] == 0
    listed = [p for p in seen["listed"] if p.startswith(state)]
    assert listed == [os.path.join(state, "records", host_hash("https", HOST))]
    assert not [p for p in seen["opened"] if p.startswith(state) and "lock" in p]
    assert sorted(set(FAST_PATH_FORBIDDEN) & set(seen["modules"])) == []


def test_cache_hit_of_a_served_host_loads_nothing_slow(tmp_path: Path) -> None:
    # Settings with URLs in them, as a real configuration has: checking them
    # must not pull in urllib.parse and re on every git command.
    env = isolated_env(tmp_path)
    Path(env["GIT_CONFIG_GLOBAL"]).write_text(
        f'[credential "https://{HOST}"]\n\toauthClientId = cid\n'
        f"\toauthIssuer = https://{HOST}/oidc\n"
        f"\toauthTokenURL = https://{HOST}/token\n"
    )
    Store(root=env["OAUTH_HELPER_HOME"], kind="file").save(
        Record(
            protocol="https",
            host=HOST,
            username="oauth2",
            client_id="cid",
            password="served-token",
            password_expiry_utc=str(int(time.time()) + 3600),
            origin="login",
        )
    )

    seen, stdout = audited_get(env, tmp_path / "audit.json")

    assert "password=served-token" in stdout.splitlines()
    assert not [p for p in seen["opened"] if "lock" in p]
    assert sorted(set(FAST_PATH_FORBIDDEN) & set(seen["modules"])) == []


def test_cache_hit_costs_the_same_with_10000_hosts(
    crowded_env: dict[str, str], tmp_path: Path
) -> None:
    lonely = Store(root=str(tmp_path / "lonely"), kind="file")
    lonely.save(Record(protocol="https", host=HOST, username="alice", password="p"))
    crowded = Store(root=crowded_env["OAUTH_HELPER_HOME"], kind="file")

    few, many = _median_lookup(lonely), _median_lookup(crowded)

    # Generous: what matters is that 10,000 hosts do not cost 10,000 times.
    assert many < few * 3 + 0.0005, (few, many)


def _median_lookup(st: Store) -> float:
    times = []
    for _ in range(300):
        start = time.perf_counter()
        found = [r.password for r in st.candidates("https", HOST)]
        times.append(time.perf_counter() - start)
        assert found == ["p"] or found == ["pw-alice"]
    return statistics.median(times)
