"""helper.http against a real local server: TLS policy, timeouts, error mapping."""

import time

import certifi
import pytest
import requests
from flows.fakeserver import FakeServer, Reply, tls_context

from helper import discovery, http
from helper.errors import ConfigError, FlowError, TransientError

SECRET = "client-secret-value-4711"


@pytest.fixture
def fake():
    with FakeServer() as server:
        yield server


@pytest.fixture
def tls(tmp_path, monkeypatch):
    context, ca_path = tls_context(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_path))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with FakeServer(tls=context) as server:
        server.ca_path = ca_path
        yield server


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/token",
        "http://127.0.0.1:8080/token",
        "http://127.9.9.9/x",
        "http://[::1]:9000/",
        "http://localhost/",
        "http://LOCALHOST:1/",
    ],
)
def test_require_secure_accepts(url):
    http.require_secure(url, "token_url")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/token",
        "http://127.0.0.1.nip.io/",
        "http://localhost.example.com/",
        "ftp://example.com/",
        "https:///nohost",
        "",
        "example.com/token",
    ],
)
def test_require_secure_refuses(url):
    with pytest.raises(ConfigError, match="token_url must be an https URL"):
        http.require_secure(url, "token_url")


def test_require_secure_refuses_user_info_without_showing_it():
    with pytest.raises(ConfigError) as info:
        http.require_secure(f"https://user:{SECRET}@example.com/t", "token_url")

    assert str(info.value) == "token_url is not a URL"


@pytest.mark.parametrize(
    "url",
    [
        # urlsplit reads 127.0.0.1, urllib3 (which connects) reads evil.example:
        # a refresh token would go in clear to another machine.
        "http://evil.example\\@127.0.0.1/token",
        "http://evil.example\\.127.0.0.1/token",
        "https://id.example\\x/token",
        "http://[::1]evil.example/",
        "https://good.example\u3002evil.example/",
    ],
)
def test_a_url_read_two_ways_is_refused(url):
    with pytest.raises(ConfigError, match=r"^token_endpoint is not a URL$"):
        http.require_secure(url, "token_endpoint")


def test_a_refresh_token_never_goes_to_a_host_read_two_ways(fake):
    fake.route("/token", Reply(200, {"access_token": "a"}))
    url = fake.url("/token").replace("http://", "http://evil.example\\@")

    with pytest.raises(ConfigError):
        http.post_form(url, {"grant_type": "refresh_token", "refresh_token": SECRET})

    assert fake.requests == []


def test_post_form_returns_json_and_sends_user_agent(fake):
    fake.route("/token", Reply(200, {"access_token": "a", "token_type": "Bearer"}))

    body = http.post_form(fake.url("/token"), {"grant_type": "x", "client_id": "c"})

    assert body == {"access_token": "a", "token_type": "Bearer"}
    seen = fake.seen("/token")[0]
    assert seen.form == {"grant_type": "x", "client_id": "c"}
    assert seen.headers["user-agent"].startswith("oauth-helper/")
    assert seen.headers["accept"] == "application/json"


def test_post_form_rfc6749_error_body_is_flow_error(fake):
    fake.route(
        "/token",
        Reply(400, {"error": "invalid_grant", "error_description": "grant\nrevoked"}),
    )

    with pytest.raises(FlowError) as info:
        http.post_form(fake.url("/token"), {"client_secret": SECRET})

    assert type(info.value) is FlowError
    assert info.value.error == "invalid_grant"
    assert info.value.description == "grant revoked"
    assert "\n" not in str(info.value)
    assert SECRET not in str(info.value)


def test_post_form_4xx_without_error_code_is_flow_error(fake):
    fake.route("/token", Reply(403, {"message": "nope"}))

    with pytest.raises(FlowError, match="HTTP 403") as info:
        http.post_form(fake.url("/token"), {})

    assert type(info.value) is FlowError
    assert info.value.error == ""


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (Reply(503, {"error": "temporarily_unavailable"}), "HTTP 503"),
        (Reply(500, "<html>oops</html>"), "HTTP 500"),
        (Reply(429, {"error": "slow"}), "HTTP 429"),
        (Reply(200, "<html>captive portal</html>"), "without a JSON object"),
        (Reply(200, ["not", "an", "object"]), "without a JSON object"),
        (Reply(close=True), "cannot reach 127.0.0.1"),
    ],
)
def test_post_form_transient_failures(fake, reply, match):
    fake.route("/token", reply)

    with pytest.raises(TransientError, match=match) as info:
        http.post_form(fake.url("/token"), {"client_secret": SECRET})

    assert SECRET not in str(info.value)


def test_post_form_read_timeout_is_transient(fake, monkeypatch):
    monkeypatch.setattr(http, "TIMEOUT", (2.0, 0.2))
    fake.route("/token", Reply(200, {"access_token": "late"}, delay=1.0))

    with pytest.raises(TransientError, match="ReadTimeout"):
        http.post_form(fake.url("/token"), {})


def test_a_server_dripping_its_answer_is_cut_off_at_the_deadline(fake, monkeypatch):
    # Every byte comes well within the read timeout; the answer as a whole
    # would take over a minute.
    monkeypatch.setattr(http, "TIMEOUT", (0.5, 1.0))
    fake.route("/token", Reply(200, {"access_token": "x" * 200}, drip=0.3))

    started = time.monotonic()
    with pytest.raises(TransientError, match=r"cannot reach 127\.0\.0\.1:\d+: Timeout"):
        http.post_form(fake.url("/token"), {"grant_type": "x"})

    assert 1.5 <= time.monotonic() - started < 4


def test_a_body_past_the_limit_is_refused_unread(fake):
    fake.route("/token", Reply(200, "x" * (2 * 1024 * 1024)))

    with pytest.raises(FlowError, match="answered with more than 1024 KiB; refusing"):
        http.post_form(fake.url("/token"), {"grant_type": "x"})


def test_a_body_at_the_limit_is_read(fake):
    padding = "x" * (1024 * 1024 - 100)
    fake.route("/token", Reply(200, {"access_token": "a", "pad": padding}))

    assert http.post_form(fake.url("/token"), {"grant_type": "x"})["pad"] == padding


def test_post_form_connection_refused_is_transient():
    with FakeServer() as gone:
        url = gone.url("/token")

    with pytest.raises(TransientError, match="ConnectionError"):
        http.post_form(url, {})


def test_post_form_refuses_insecure_url():
    with pytest.raises(ConfigError):
        http.post_form("http://example.com/token", {})


def test_netrc_never_reaches_the_token_endpoint(fake, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login me password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    fake.route("/token", Reply(200, {"ok": True}))

    http.post_form(fake.url("/token"), {})

    assert "authorization" not in fake.seen("/token")[0].headers


def test_tls_with_ca_from_requests_ca_bundle(tls):
    tls.route("/token", Reply(200, {"ok": True}))

    assert http.post_form(tls.url("/token"), {}) == {"ok": True}


def test_tls_with_ca_from_ssl_cert_file(tls, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_path))
    # requests itself would prefer CURL_CA_BUNDLE here; the helper does not.
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    tls.route("/token", Reply(200, {"ok": True}))

    assert http.ca_bundle() == str(tls.ca_path)
    assert http.post_form(tls.url("/token"), {}) == {"ok": True}


def test_requests_ca_bundle_wins_over_ssl_cert_file(tls, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())

    assert http.ca_bundle() == str(tls.ca_path)


def test_default_ca_is_certifi(monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)

    assert http.ca_bundle() == certifi.where()


def test_untrusted_certificate_is_refused(tls, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    tls.route("/token", Reply(200, {"ok": True}))

    with pytest.raises(ConfigError, match="certificate"):
        http.post_form(tls.url("/token"), {})
    assert tls.seen("/token") == []


def test_verify_false_from_a_caller_is_ignored(tls, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    tls.route("/x", Reply(200, {"ok": True}))

    with http.session() as session, pytest.raises(Exception, match="CERTIFICATE"):
        session.get(tls.url("/x"), verify=False)
    assert tls.seen("/x") == []


@pytest.fixture
def elsewhere():
    with FakeServer() as server:
        server.route("/token", Reply(200, {"access_token": "stolen"}))
        server.route("/meta", Reply(200, {"ok": "followed"}))
        yield server


def off_loopback(server, path):
    # 0.0.0.0 reaches the server on this machine but is not a loopback
    # address, so require_secure would refuse it as a configured URL.
    return server.url(path).replace("127.0.0.1", "0.0.0.0")  # noqa: S104


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_of_a_post_is_not_followed(fake, elsewhere, status):
    # Not even to loopback: a token request is never sent on.
    location = elsewhere.url("/token")
    fake.route("/token", Reply(status, "", headers={"Location": location}))
    form = {"grant_type": "refresh_token", "refresh_token": SECRET}

    with pytest.raises(FlowError, match="answered a redirect") as info:
        http.post_form(fake.url("/token"), form)

    assert type(info.value) is FlowError
    assert "127.0.0.1" in str(info.value)
    assert SECRET not in str(info.value)
    assert fake.seen("/token")[0].form["refresh_token"] == SECRET
    assert elsewhere.requests == []


def test_redirect_of_a_get_to_plain_http_elsewhere_is_refused(fake, elsewhere):
    location = off_loopback(elsewhere, "/meta")
    fake.route("/meta", Reply(302, "", headers={"Location": location}))

    with http.session() as session, pytest.raises(ConfigError, match="redirect"):
        session.get(fake.url("/meta"))
    assert elsewhere.requests == []


def test_redirect_of_a_get_to_https_is_followed(fake, tls):
    tls.route("/meta", Reply(200, {"ok": "over tls"}))
    fake.route("/meta", Reply(301, "", headers={"Location": tls.url("/meta")}))

    with http.session() as session:
        response = session.get(fake.url("/meta"))

    assert response.json() == {"ok": "over tls"}
    assert len(tls.seen("/meta")) == 1


def test_redirect_of_a_get_to_loopback_http_is_followed(fake, elsewhere):
    fake.route("/meta", Reply(307, "", headers={"Location": elsewhere.url("/meta")}))

    with http.session() as session:
        assert session.get(fake.url("/meta")).json() == {"ok": "followed"}


OIDC = "/.well-known/openid-configuration"


@pytest.fixture
def discovery_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_discovery_follows_a_redirect_to_https_only(
    fake, tls, elsewhere, discovery_cache
):
    document = {"issuer": fake.origin, "token_endpoint": fake.url("/token")}
    tls.route(OIDC, Reply(200, document))
    fake.route(OIDC, Reply(302, "", headers={"Location": tls.url(OIDC)}))

    assert discovery.discover(fake.origin) == document

    issuer = fake.url("/moved")
    target = off_loopback(elsewhere, OIDC)
    fake.route("/moved" + OIDC, Reply(302, "", headers={"Location": target}))
    with pytest.raises(ConfigError, match=r"redirect from 127\.0\.0\.1"):
        discovery.discover(issuer)
    assert elsewhere.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1/token",
        "http://[oops",
        "https://[::1]:99999/token",
        "https://[::1]:-1/token",
        "https://a b/token",
        "https://%zz/token",
        "https://é.test:1e3/t",
        "https://a..b/t",
        f"https://{'x' * 64}.example/t",
    ],
)
def test_a_url_that_cannot_be_split_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^token_url is not a URL$"):
        http.require_secure(url, "token_url")

    if "[" in url and "]" not in url:
        assert http.shown(url) == http.host_of(url) == "(not a URL)"


def test_a_url_requests_cannot_use_is_a_config_error() -> None:
    # urlsplit takes it; requests does not: a typo, not a network problem.
    with pytest.raises(ConfigError, match=r"^OAuth endpoint is not a URL$"):
        http.post_form("https://[v1.x]/t", {"grant_type": "refresh_token"})


@pytest.mark.parametrize(
    "url", ["https:///t?access_token=SECRET", "https://:443/t#SECRET", "t?SECRET"]
)
def test_a_url_without_a_host_is_shown_without_its_query(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        http.require_secure(url, "token_url")

    assert "SECRET" not in str(raised.value)
    assert "SECRET" not in http.shown(url) + http.host_of(url)


@pytest.mark.parametrize(
    "url", ["https://id.example/authorize\x1b[31mRED", "https://id.example/\x07"]
)
def test_a_url_with_a_control_character_is_refused(url: str) -> None:
    # Such a URL from discovery would reach the terminal and the browser.
    with pytest.raises(ConfigError, match=r"^authorization_endpoint holds a control"):
        http.require_secure(url, "authorization_endpoint")


def test_the_deadline_covers_redirects_too(fake, monkeypatch):
    # Each hop well within the deadline; all of them together not.
    monkeypatch.setattr(http, "TIMEOUT", (0.5, 1.0))
    fake.route("/a", Reply(302, "", headers={"Location": "/b"}, delay=0.6))
    fake.route("/b", Reply(302, "", headers={"Location": "/c"}, delay=0.6))
    fake.route("/c", Reply(200, {"issuer": "x"}, delay=0.6))

    started = time.monotonic()
    with http.session() as session, pytest.raises(requests.exceptions.Timeout):
        session.get(fake.url("/a"))

    assert time.monotonic() - started < 1.8


def test_more_than_three_redirects_are_not_followed(fake):
    for hop in range(5):
        fake.route(f"/{hop}", Reply(302, "", headers={"Location": f"/{hop + 1}"}))
    fake.route("/5", Reply(200, {}))

    with http.session() as session, pytest.raises(requests.exceptions.TooManyRedirects):
        session.get(fake.url("/0"))

    assert len(fake.requests) == 4
