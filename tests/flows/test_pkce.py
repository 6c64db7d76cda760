"""helper.flows.pkce against a small local authorization server.

The server checks PKCE for real (S256 of the verifier against the challenge);
BROWSER is a script that follows the authorization URL and its redirect to
the loopback listener, as a browser with a signed-in user would.
"""

import base64
import hashlib
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from flows.fakeserver import FakeServer, Reply, Seen, tls_context
from helper import terminal as tty_module
from helper.errors import FlowError, TransientError
from helper.flows.pkce import login_browser
from helper.providers import Provider

CODE = "the-authorization-code"
ACCESS = "the-access-token"
REFRESH = "the-refresh-token"

BROWSER = """\
#!/bin/sh
"{python}" - "$1" >/dev/null 2>&1 <<'PY' &
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile="{ca}") if "{ca}" else None
https = urllib.request.HTTPSHandler(context=context)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}), https)
opener.open(sys.argv[1], timeout=10).read()
PY
exit 0
"""


class AuthServer:
    """Authorization and token endpoints with scripted quirks."""

    def __init__(self, fake, issuer=None):
        self.fake = fake
        self.issuer = issuer if issuer is not None else fake.origin
        self.challenge = ""
        self.redirect = {}
        self.token_reply = None
        self.scope = None
        fake.route("/authorize", self.authorize)
        fake.route("/token", self.token)

    def authorize(self, seen: Seen) -> Reply:
        query = seen.query
        self.challenge = query.get("code_challenge", "")
        params = {"code": CODE, "state": query["state"], **self.redirect}
        if self.issuer:
            params["iss"] = self.issuer
        params = {k: v for k, v in params.items() if v is not None}
        location = query["redirect_uri"] + "?" + urllib.parse.urlencode(params)
        return Reply(302, "", headers={"Location": location})

    def token(self, seen: Seen) -> Reply:
        if self.token_reply is not None:
            return self.token_reply
        form = seen.form
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if form.get("code") != CODE or expected != self.challenge:
            return Reply(400, {"error": "invalid_grant"})
        body = {"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 300}
        if self.scope is not None:
            body["scope"] = self.scope
        return Reply(200, {**body, "token_type": "Bearer"})


@pytest.fixture
def fake():
    with FakeServer() as server:
        yield server


@pytest.fixture
def browser(tmp_path, monkeypatch):
    def install(ca=""):
        path = tmp_path / "follow-browser"
        path.write_text(BROWSER.format(python=sys.executable, ca=ca))
        path.chmod(0o755)
        monkeypatch.setenv("BROWSER", str(path))

    install()
    return install


def make_provider(fake, **values):
    settings = {
        "client_id": "cli",
        "scopes": ("openid", "offline_access"),
        "issuer": fake.origin,
        "auth_url": fake.url("/authorize"),
        "token_url": fake.url("/token"),
    }
    return Provider(**{**settings, **values})


def test_login_returns_the_token(fake, browser, prompts, capsys):
    AuthServer(fake)
    provider = make_provider(fake, auth_params={"prompt": "consent", "state": "x"})

    token = login_browser(provider, timeout=10, login_hint="me@example.com")

    assert (token.access_token, token.refresh_token) == (ACCESS, REFRESH)
    query = fake.seen("/authorize")[0].query
    assert query["code_challenge_method"] == "S256"
    assert query["client_id"] == "cli"
    assert query["response_type"] == "code"
    assert query["scope"] == "openid offline_access"
    assert query["prompt"] == "consent"
    assert query["login_hint"] == "me@example.com"
    assert query["state"] != "x"
    assert query["redirect_uri"].startswith("http://127.0.0.1:")
    form = fake.seen("/token")[0].form
    assert form["client_id"] == "cli"
    assert form["redirect_uri"] == query["redirect_uri"]
    assert "client_secret" not in form
    assert "authorization" not in fake.seen("/token")[0].headers
    host = urllib.parse.urlsplit(fake.origin).netloc
    [shown] = prompts()
    assert shown.startswith(f"open this URL to sign in to {host}: ")
    assert fake.url("/authorize?") in shown
    # Logged, not printed: only the CLI writes to stderr.
    assert capsys.readouterr().err == ""


def test_client_secret_is_sent_in_the_body(fake, browser):
    AuthServer(fake)

    login_browser(make_provider(fake, client_secret="sec"), timeout=10)

    assert fake.seen("/token")[0].form["client_secret"] == "sec"


def test_configured_redirect_url_is_sent(fake, browser):
    AuthServer(fake)
    provider = make_provider(fake, redirect_url="http://localhost/cb")

    login_browser(provider, timeout=10)

    redirect_uri = fake.seen("/authorize")[0].query["redirect_uri"]
    assert redirect_uri.startswith("http://localhost:")
    assert redirect_uri.endswith("/cb")


def test_narrower_scope_in_the_answer_is_accepted(fake, browser):
    # RFC 6749 §3.3; oauthlib alone would raise a Warning here.
    AuthServer(fake).scope = "openid"

    token = login_browser(make_provider(fake), timeout=10)

    assert token.scope == "openid"
    assert "OAUTHLIB_RELAX_TOKEN_SCOPE" not in os.environ
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_user_refusal_carries_the_rfc_error(fake, browser):
    AuthServer(fake).redirect = {
        "code": None,
        "error": "access_denied",
        "error_description": "The user said no",
    }

    with pytest.raises(FlowError) as info:
        login_browser(make_provider(fake), timeout=10)

    assert info.value.error == "access_denied"
    assert info.value.description == "The user said no"
    assert fake.seen("/token") == []


def test_mismatched_iss_is_refused(fake, browser):
    AuthServer(fake, issuer="https://evil.example")

    with pytest.raises(FlowError, match=r"evil\.example"):
        login_browser(make_provider(fake), timeout=10)

    assert fake.seen("/token") == []


def test_missing_iss_is_tolerated(fake, browser):
    AuthServer(fake, issuer="")

    assert login_browser(make_provider(fake), timeout=10).access_token == ACCESS


def test_wrong_state_is_ignored_until_timeout(fake, browser):
    AuthServer(fake).redirect = {"state": "forged"}

    with pytest.raises(FlowError, match="timed out"):
        login_browser(make_provider(fake), timeout=1)

    assert len(fake.seen("/authorize")) == 1
    assert fake.seen("/token") == []


def test_replayed_code_is_invalid_grant(fake, browser):
    AuthServer(fake).token_reply = Reply(
        400, {"error": "invalid_grant", "error_description": "code already used"}
    )

    with pytest.raises(FlowError) as info:
        login_browser(make_provider(fake), timeout=10)

    assert info.value.error == "invalid_grant"
    assert CODE not in str(info.value)


@pytest.mark.parametrize(
    "reply", [Reply(503, "<html>busy</html>"), Reply(200, "<html>portal</html>")]
)
def test_token_endpoint_outage_is_transient(fake, browser, reply):
    AuthServer(fake).token_reply = reply

    with pytest.raises(TransientError):
        login_browser(make_provider(fake), timeout=10)


def test_dropped_connection_is_transient(fake, browser):
    AuthServer(fake).token_reply = Reply(close=True)

    with pytest.raises(TransientError, match="cannot reach"):
        login_browser(make_provider(fake), timeout=10)


def test_answer_without_access_token_is_a_flow_error(fake, browser):
    AuthServer(fake).token_reply = Reply(200, {"token_type": "Bearer"})

    with pytest.raises(FlowError) as info:
        login_browser(make_provider(fake), timeout=10)

    assert type(info.value) is FlowError


def test_a_redirect_from_the_token_endpoint_is_not_followed(fake, browser):
    with FakeServer() as elsewhere:
        elsewhere.route("/token", Reply(200, {"access_token": "stolen"}))
        # Not even to loopback: a token request is never sent on.
        location = elsewhere.url("/token")
        AuthServer(fake).token_reply = Reply(308, "", headers={"Location": location})

        with pytest.raises(FlowError, match="answered a redirect") as info:
            login_browser(make_provider(fake, client_secret="sec"), timeout=10)

    assert type(info.value) is FlowError
    assert fake.seen("/token")[0].form["code"] == CODE
    assert elsewhere.requests == []


HUGE = "1" + "0" * 400


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("expires_in", '"abc"', None),
        ("expires_in", "1e400", None),
        ("expires_in", HUGE, None),
        ("expires_in", '"59.9"', 59),
        ("expires_in", "[300]", None),
        ("scope", "5", ""),
        ("scope", '{"openid": true}', ""),
        ("scope", '["openid", "email"]', "openid email"),
    ],
)
def test_odd_values_in_the_token_answer_do_not_fail_the_sign_in(
    fake, browser, field, raw, expected
):
    # Raw JSON text: 1e400 and a 401-digit integer are valid JSON numbers.
    body = f'{{"access_token": "{ACCESS}", "refresh_token": "{REFRESH}", '
    body += f'"token_type": "Bearer", "{field}": {raw}}}'
    AuthServer(fake).token_reply = Reply(200, body)

    started = int(time.time())
    token = login_browser(make_provider(fake), timeout=10)

    assert (token.access_token, token.refresh_token) == (ACCESS, REFRESH)
    if field == "scope":
        assert token.scope == expected
    elif expected is None:
        assert token.expires_at is None
    else:
        assert started + expected <= token.expires_at <= int(time.time()) + expected


def test_over_tls_with_the_test_ca(tmp_path, monkeypatch, browser):
    context, ca_path = tls_context(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
    browser(ca=str(ca_path))
    with FakeServer(tls=context) as fake:
        AuthServer(fake)

        token = login_browser(make_provider(fake), timeout=10)

    assert token.access_token == ACCESS


def test_no_secret_reaches_any_log(fake, browser, caplog):
    # Even with DEBUG forced on the libraries' own loggers.
    AuthServer(fake)
    caplog.set_level(logging.DEBUG)
    for name in ("oauthlib", "requests_oauthlib", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)

    login_browser(make_provider(fake, client_secret="client-sec"), timeout=10)

    verifier = fake.seen("/token")[0].form["code_verifier"]
    for secret in (CODE, ACCESS, REFRESH, verifier, "client-sec"):
        assert secret not in caplog.text


# The paste fallback: a pseudo-terminal stands in for /dev/tty.


@pytest.fixture
def terminal(monkeypatch):
    """A pty whose slave is "the terminal"; returns the master, to type into."""
    master, slave = os.openpty()
    monkeypatch.setattr(tty_module, "DEVICE", os.ttyname(slave))
    for name in ("SSH_CONNECTION", "SSH_TTY"):
        monkeypatch.delenv(name, raising=False)
    yield master
    os.close(master)
    os.close(slave)


def paste_prompts(caplog):
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "helper.loopback" and record.levelno == logging.WARNING
    ]


def authorization_url(prompts):
    """The URL the flow asked the user to open, once it has."""
    for _ in range(100):
        for line in prompts():
            if line.startswith("open this URL"):
                return line.rsplit(" ", 1)[1]
        time.sleep(0.05)
    raise AssertionError(f"no authorization URL among {prompts()}")


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def redirect_of(url):
    """Where the authorization endpoint sends the browser, not going there."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _Stay)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(url, timeout=5)
    with info.value as response:
        return response.headers["Location"]


def test_without_a_browser_a_pasted_address_signs_in(
    fake, terminal, prompts, caplog, tmp_path, monkeypatch
):
    AuthServer(fake)
    monkeypatch.setenv("BROWSER", str(tmp_path / "no-such-browser"))

    with ThreadPoolExecutor(1) as pool:
        login = pool.submit(login_browser, make_provider(fake), timeout=10)
        address = redirect_of(authorization_url(prompts))
        os.write(terminal, f"{address}\n".encode())
        token = login.result(timeout=10)

    assert token.access_token == ACCESS
    assert fake.seen("/token")[0].form["code"] == CODE
    assert len(paste_prompts(caplog)) == 1
    assert CODE not in caplog.text


def test_a_browser_that_started_here_gets_no_paste_prompt(
    fake, browser, terminal, prompts, caplog
):
    AuthServer(fake)

    assert login_browser(make_provider(fake), timeout=10).access_token == ACCESS
    assert authorization_url(prompts)  # the capture works: the URL was shown
    assert paste_prompts(caplog) == []


def test_over_ssh_the_paste_is_offered_and_a_redirect_still_ends_it(
    fake, browser, terminal, prompts, caplog, monkeypatch
):
    AuthServer(fake)
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.1 50000 192.0.2.2 22")

    assert login_browser(make_provider(fake), timeout=10).access_token == ACCESS
    assert len(paste_prompts(caplog)) == 1


@pytest.mark.parametrize(
    ("username", "hint"),
    [
        ("alice@example.com", "alice@example.com"),
        # The preset's own default is what git echoes back, not an account.
        ("oauth2", None),
        # %FF in a remote URL: not text, so no hint (and no crash).
        ("\udcff", None),
    ],
)
def test_only_a_username_naming_someone_becomes_the_login_hint(
    fake, browser, prompts, tmp_path, username, hint
):
    from helper import login
    from helper.protocol import Credential
    from helper.store import Store

    AuthServer(fake)
    provider = make_provider(fake, flow="browser", username="oauth2")
    cred = Credential(protocol="https", host="git.example", username=username)
    store = Store(str(tmp_path / "state"), kind="file")

    record = login.obtain(cred, provider, store, interactive=True)

    assert record is not None and record.password == ACCESS
    assert fake.seen("/authorize")[0].query.get("login_hint") == hint
