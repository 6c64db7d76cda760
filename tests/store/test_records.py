"""The record's text form: round trip, and damage detected rather than trusted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helper.errors import StoreError
from helper.store.records import FIELDS, Record, parse_record

# Values as they can reach a record: anything but CR, LF and NUL. Bytes that
# are not UTF-8 arrive as surrogateescape's U+DC80-U+DCFF; no other lone
# surrogate can come out of decoding stdin.
escaped = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)
values = st.text(
    st.characters(exclude_characters="\r\n\0", exclude_categories=("Cs",)) | escaped,
    max_size=40,
)
numbers = st.integers(min_value=0, max_value=2**40).map(str)


@given(
    username=values,
    password=values,
    refresh=values,
    path=values,
    expiry=numbers,
)
def test_text_round_trip(
    username: str, password: str, refresh: str, path: str, expiry: str
) -> None:
    record = Record(
        protocol="https",
        host="git.example.test",
        path=path,
        username=username,
        password=password,
        oauth_refresh_token=refresh,
        password_expiry_utc=expiry,
    )

    again = parse_record(record.to_text())

    assert {f: getattr(again, f) for f in FIELDS} == {
        f: getattr(record, f) for f in FIELDS
    }
    assert again.key_hash == record.key_hash


def test_sealed_text_holds_no_secret() -> None:
    record = Record(host="h", password="pw-secret", oauth_refresh_token="rt-secret")

    text = record.to_text(sealed="BLOB")

    assert "secret" not in text
    assert parse_record(text).sealed == "BLOB"
    assert "pw-secret" not in repr(record)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "oauth-helper-record=1\nhost=h",  # cut short: no final newline
        "oauth-helper-record=2\nhost=h\n",
        "something-else=1\n",
        "oauth-helper-record=1\nnot a pair\n",
        "oauth-helper-record=1\nwho=knows\n",
        "oauth-helper-record=1\npassword_expiry_utc=tomorrow\n",
        "oauth-helper-record=1\npassword_expiry_utc=\u00b2\n",
        "oauth-helper-record=1\nupdated=-5\n",
    ],
)
def test_damaged_text_is_refused(text: str) -> None:
    with pytest.raises(StoreError):
        parse_record(text)


def test_keys_differ_by_every_key_field() -> None:
    base = Record(protocol="https", host="h", path="p", username="u")

    changed = [
        base.copy(**{field: "other"}).key_hash
        for field in ("protocol", "host", "path", "username", "client_id", "scope")
    ]

    assert len({base.key_hash, *changed}) == 7


def test_fresh_needs_a_secret_and_a_future_expiry() -> None:
    now = 1_000_000
    assert Record(password="p").is_fresh(0, now)
    assert Record(password="p", password_expiry_utc="1000100").is_fresh(60, now)
    assert not Record(password="p", password_expiry_utc="1000100").is_fresh(200, now)
    assert not Record(password_expiry_utc="2000000").is_fresh(0, now)
    # capability[]=authtype: the secret is the credential, with no password.
    assert Record(authtype="Bearer", credential="tok").is_fresh(0, now)


def test_margin_is_at_most_half_the_token_lifetime() -> None:
    issued = 1_000_000
    short = Record(
        password="p", password_expiry_utc=str(issued + 30), updated=str(issued)
    )
    long = Record(
        password="p", password_expiry_utc=str(issued + 3600), updated=str(issued)
    )

    assert short.margin(60) == 15
    assert long.margin(60) == 60
    assert short.is_fresh(60, now=issued + 14)
    assert not short.is_fresh(60, now=issued + 16)
