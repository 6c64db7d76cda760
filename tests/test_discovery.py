"""helper.discovery against a real local server, with the cache on disk."""

import os
import stat
import time

import pytest
from flows.fakeserver import FakeServer, Reply

from helper import discovery
from helper.errors import ConfigError

OIDC = "/.well-known/openid-configuration"
RFC8414 = "/.well-known/oauth-authorization-server"


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake():
    with FakeServer() as server:
        yield server


def document(issuer, **extra):
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/auth",
        "token_endpoint": issuer + "/token",
        **extra,
    }


def test_openid_configuration_is_fetched_and_cached(fake, cache_home):
    fake.route(OIDC, Reply(200, document(fake.origin)))

    first = discovery.discover(fake.origin)
    second = discovery.discover(fake.origin)

    assert first == second == document(fake.origin)
    assert len(fake.seen(OIDC)) == 1
    directory = cache_home / "oauth-helper" / "discovery"
    assert discovery.cache_dir() == directory
    (cached,) = directory.iterdir()
    assert "127.0.0.1" not in cached.name
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600


def test_falls_back_to_rfc8414(fake):
    fake.route(RFC8414, Reply(200, document(fake.origin)))

    assert discovery.discover(fake.origin)["token_endpoint"].endswith("/token")
    assert [r.path for r in fake.requests] == [OIDC, RFC8414]


def test_issuer_with_path_tries_the_rfc8414_inserted_form(fake):
    issuer = fake.url("/tenant/one")
    fake.route(RFC8414 + "/tenant/one", Reply(200, document(issuer)))

    assert discovery.discover(issuer)["issuer"] == issuer
    assert [r.path for r in fake.requests] == [
        "/tenant/one" + OIDC,
        RFC8414 + "/tenant/one",
    ]


def test_trailing_slash_is_not_doubled():
    urls = discovery.well_known_urls("https://id.example/realm/")

    assert urls == [
        "https://id.example/realm/.well-known/openid-configuration",
        "https://id.example/.well-known/oauth-authorization-server/realm",
        "https://id.example/realm/.well-known/oauth-authorization-server",
    ]


def test_wrong_issuer_is_refused_and_not_cached(fake, cache_home):
    fake.route(OIDC, Reply(200, document("https://evil.example")))

    with pytest.raises(ConfigError) as info:
        discovery.discover(fake.origin)

    message = str(info.value)
    assert fake.url(OIDC) in message
    assert "https://evil.example" in message
    assert "\n" not in message
    assert not (cache_home / "oauth-helper" / "discovery").exists()
    # A mismatching document stops the search: no fallback is tried.
    assert len(fake.requests) == 1


def test_insecure_endpoint_in_document_is_refused(fake):
    doc = document(fake.origin, token_endpoint="http://evil.example/token")
    fake.route(OIDC, Reply(200, doc))

    with pytest.raises(ConfigError, match="token_endpoint"):
        discovery.discover(fake.origin)


@pytest.mark.parametrize(
    "reply",
    [Reply(404, {}), Reply(200, "<html>not json</html>"), Reply(200, [1, 2])],
)
def test_no_document_names_the_urls(fake, reply):
    fake.route(OIDC, reply)
    fake.route(RFC8414, reply)

    with pytest.raises(ConfigError) as info:
        discovery.discover(fake.origin)

    message = str(info.value)
    assert fake.url(OIDC) in message
    assert fake.url(RFC8414) in message
    assert "\n" not in message


def test_unreachable_issuer_names_the_url():
    with FakeServer() as gone:
        issuer = gone.origin

    with pytest.raises(ConfigError, match=r"cannot fetch http://127\.0\.0\.1:.*openid"):
        discovery.discover(issuer)


def test_insecure_issuer_is_refused():
    with pytest.raises(ConfigError, match="issuer must be an https URL"):
        discovery.discover("http://id.example")


@pytest.mark.parametrize(
    "suffix", ["?tenant=secret-value", "#secret-value", "?a=1#secret-value"]
)
def test_issuer_with_query_or_fragment_is_refused_unfetched(fake, suffix):
    with pytest.raises(ConfigError) as raised:
        discovery.discover(fake.origin + "/realm" + suffix)

    message = str(raised.value)
    assert "RFC 8414" in message
    assert f"{fake.origin}/realm'" in message
    assert "secret-value" not in message
    assert fake.requests == []


def test_issuer_with_user_info_is_refused_unshown(fake):
    issuer = fake.origin.replace("://", "://me:secret-value@")

    with pytest.raises(ConfigError, match="without user info") as raised:
        discovery.discover(issuer)

    assert "secret-value" not in str(raised.value)
    assert fake.requests == []


def test_a_documented_url_with_a_query_is_not_shown_whole(fake):
    url = fake.url("/meta?key=secret-value")

    with pytest.raises(ConfigError) as raised:
        discovery.discover(fake.origin, url)

    message = str(raised.value)
    assert f"{fake.url('/meta')}: HTTP 404" in message
    assert "secret-value" not in message


def test_expired_cache_is_refetched(fake):
    fake.route(OIDC, Reply(200, document(fake.origin)))
    discovery.discover(fake.origin)
    (cached,) = discovery.cache_dir().iterdir()
    old = time.time() - discovery.CACHE_LIFETIME - 60
    os.utime(cached, (old, old))

    discovery.discover(fake.origin)

    assert len(fake.seen(OIDC)) == 2
    assert time.time() - cached.stat().st_mtime < 60


@pytest.mark.parametrize("content", ["{broken", '{"issuer": "https://other"}', "[]"])
def test_bad_cache_file_is_refetched(fake, content):
    fake.route(OIDC, Reply(200, document(fake.origin)))
    discovery.discover(fake.origin)
    (cached,) = discovery.cache_dir().iterdir()
    cached.write_text(content)

    assert discovery.discover(fake.origin) == document(fake.origin)
    assert len(fake.seen(OIDC)) == 2


def test_unwritable_cache_does_not_fail(fake, cache_home, monkeypatch):
    cache_home.mkdir()
    (cache_home / "oauth-helper").write_text("a file where a directory should be")
    fake.route(OIDC, Reply(200, document(fake.origin)))

    assert discovery.discover(fake.origin)["issuer"] == fake.origin


def test_an_issuer_that_cannot_be_split_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^issuer is not a URL$"):
        discovery.discover("https://[::1/tenant")


def test_a_fifo_in_the_cache_is_refetched_not_waited_on(fake):
    fake.route(OIDC, Reply(200, document(fake.origin)))
    discovery.discover(fake.origin)
    [cached] = list(discovery.cache_dir().iterdir())
    cached.unlink()
    os.mkfifo(cached, 0o600)

    started = time.monotonic()
    discovery.discover(fake.origin)

    assert time.monotonic() - started < 5
    assert len(fake.seen(OIDC)) == 2
