"""The wire format: parsing requests and writing answers (git-credential(1))."""

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helper.errors import ProtocolError
from helper.protocol import Credential, format_answer, parse

# Values git can send: anything but the line terminators and NUL.
values = st.text(st.characters(exclude_characters="\r\n\0"), max_size=200)
keys = st.sampled_from(["protocol", "host", "path", "username", "password"])


def test_parse_reads_known_attributes_and_stops_at_blank_line() -> None:
    cred = parse(io.StringIO("protocol=https\nhost=h:8443\n\nhost=late\n"))

    assert (cred.protocol, cred.host) == ("https", "h:8443")


def test_parse_tolerates_crlf_and_value_with_equals_sign() -> None:
    cred = parse(io.StringIO("host=h\r\npassword=a=b==\r\n\r\n"))

    assert cred.host == "h"
    assert cred.password == "a=b=="


def test_parse_ignores_unknown_keys() -> None:
    cred = parse(io.StringIO("frobnicate=1\nhost=h\n"))

    assert cred.host == "h"
    assert not hasattr(cred, "frobnicate")


def test_list_keys_append_and_empty_value_resets() -> None:
    text = "wwwauth[]=a\nwwwauth[]=b\nwwwauth[]=\nwwwauth[]=c\ncapability[]=authtype\n"
    cred = parse(io.StringIO(text))

    assert cred.wwwauth == ["c"]
    assert cred.has_capability("authtype")


def test_url_is_split_into_parts() -> None:
    cred = parse(io.StringIO("url=https://al%40ice@git.example:8443/a/b.git\n"))

    assert (cred.protocol, cred.host, cred.path) == (
        "https",
        "git.example:8443",
        "a/b.git",
    )
    assert cred.username == "al@ice"


def test_url_keeps_ipv6_brackets_and_port_as_git_sends_them() -> None:
    cred = parse(io.StringIO("url=https://[::1]:9000/x\n"))

    assert (cred.host, cred.path) == ("[::1]:9000", "x")


def test_nul_byte_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="NUL"):
        parse(io.StringIO("protocol=https\nhost=h\0evil\n"))


def test_line_without_equals_is_an_error_that_hides_the_line() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(io.StringIO("host=h\nghp_secretvalue\n"))

    assert "ghp_secretvalue" not in str(caught.value)


def test_repr_never_shows_secrets() -> None:
    cred = Credential(host="h", password="pw-123", oauth_refresh_token="rt-456")

    assert "pw-123" not in repr(cred)
    assert "rt-456" not in repr(cred)
    assert "'h'" in repr(cred)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_format_refuses_line_breaks_and_nul(bad: str) -> None:
    with pytest.raises(ProtocolError):
        format_answer([("password", bad)])


@given(st.dictionaries(keys, values, min_size=1))
def test_round_trip_through_the_wire_format(attrs: dict[str, str]) -> None:
    text = format_answer(attrs.items())
    cred = parse(io.StringIO(text))

    for key, value in attrs.items():
        # The protocol is a URL scheme, read in lower case.
        assert getattr(cred, key) == (value.lower() if key == "protocol" else value)


@given(st.text(max_size=300))
def test_parser_never_fails_with_anything_but_protocol_error(text: str) -> None:
    try:
        cred = parse(io.StringIO(text))
    except ProtocolError:
        return
    assert isinstance(cred.host, str)


@pytest.mark.parametrize("url", ["https://[::1", "https://[zz]/", "https://]/"])
def test_a_url_that_cannot_be_split_is_a_protocol_error(url: str) -> None:
    with pytest.raises(ProtocolError, match=r"^url is not a valid URL$"):
        parse(io.StringIO(f"url={url}\n\n"))


def test_a_url_without_a_scheme_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match=r"^url has no scheme$"):
        parse(io.StringIO("url=nothing-here\n\n"))


@pytest.mark.parametrize("line", ["protocol=HTTPS", "url=HTTPS://git.example/x"])
def test_the_protocol_is_read_in_lower_case(line: str) -> None:
    assert parse([line]).protocol == "https"
