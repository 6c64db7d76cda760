"""helper.loopback with real HTTP requests from this process."""

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from helper.errors import ConfigError, FlowError
from helper.loopback import Listener

STATE = "expected-state-value"
CODE = "authorization-code-value-9"


def get(url):
    """Status and body of a GET, without proxies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_default_redirect_uri_is_ip_literal_with_random_port():
    with Listener(STATE) as listener:
        host_port = listener.redirect_uri.removeprefix("http://").rstrip("/")
        host, port = host_port.split(":")

        assert listener.redirect_uri.endswith("/")
        assert host == "127.0.0.1"
        assert int(port) > 0
        # Bound already: a connection succeeds before any URL is opened.
        socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()


def test_returns_the_params_of_the_matching_request():
    with Listener(STATE) as listener:
        status, body = get(f"{listener.redirect_uri}?code={CODE}&state={STATE}&iss=x")
        params = listener.wait(timeout=5)

    assert status == 200
    assert "close this tab" in body
    assert params == {"code": CODE, "state": STATE, "iss": "x"}


def test_stray_requests_are_answered_and_the_wait_goes_on():
    with Listener(STATE, "http://127.0.0.1/callback") as listener:
        base = listener.redirect_uri.removesuffix("/callback")
        strays = [
            (f"{base}/favicon.ico", 404),
            (f"{base}/other?code=x&state={STATE}", 404),
            (f"{listener.redirect_uri}?code=x&state=wrong", 400),
            (f"{listener.redirect_uri}?code=x", 400),
            (f"{listener.redirect_uri}?state={STATE}", 400),
        ]
        statuses = [get(url)[0] for url, _ in strays]
        get(f"{listener.redirect_uri}?code={CODE}&state={STATE}")
        params = listener.wait(timeout=5)

    assert statuses == [expected for _, expected in strays]
    assert params["code"] == CODE


def test_error_response_is_returned_and_shown():
    with Listener(STATE) as listener:
        url = f"{listener.redirect_uri}?error=access_denied&state={STATE}"
        status, body = get(url + "&error_description=%3Cb%3Eno%3C%2Fb%3E")
        params = listener.wait(timeout=5)

    assert status == 200
    assert "Sign-in failed: access_denied" in body
    assert params["error"] == "access_denied"
    assert params["error_description"] == "<b>no</b>"


def test_a_second_matching_request_is_refused():
    with Listener(STATE) as listener:
        get(f"{listener.redirect_uri}?code=first&state={STATE}")
        status, _ = get(f"{listener.redirect_uri}?code=second&state={STATE}")
        params = listener.wait(timeout=5)

    assert status == 400
    assert params["code"] == "first"


@pytest.mark.parametrize(
    ("host", "path", "sent"),
    [("localhost", "/callback", "/callback"), ("127.0.0.1", "", "/")],
)
def test_configured_redirect_url_is_used_exactly(host, path, sent):
    port = free_port()
    configured = f"http://{host}:{port}{path}"

    with Listener(STATE, configured) as listener:
        assert listener.redirect_uri == configured
        get(f"http://127.0.0.1:{port}{sent}?code={CODE}&state={STATE}")
        assert listener.wait(timeout=5)["code"] == CODE


def test_configured_url_without_port_keeps_host_and_path():
    with Listener(STATE, "http://127.0.0.1/callback") as listener:
        assert listener.redirect_uri.startswith("http://127.0.0.1:")
        assert listener.redirect_uri.endswith("/callback")
        assert not listener.redirect_uri.startswith("http://127.0.0.1:0/")


def test_a_fixed_port_can_be_reused_right_after_a_login():
    configured = f"http://127.0.0.1:{free_port()}/"
    for _ in range(2):
        with Listener(STATE, configured) as listener:
            get(f"{configured}?code={CODE}&state={STATE}")
            assert listener.wait(timeout=5)["code"] == CODE


def test_configured_port_in_use_is_a_config_error():
    with Listener(STATE) as first, pytest.raises(ConfigError, match="cannot listen"):
        Listener(STATE, first.redirect_uri)


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1:8000/", "http://example.com:8000/", "http://0.0.0.0:8000/"],
)
def test_non_loopback_redirect_url_is_refused(url):
    with pytest.raises(ConfigError, match="redirect_url"):
        Listener(STATE, url)


def test_wait_times_out():
    with Listener(STATE) as listener:
        started = time.monotonic()
        with pytest.raises(FlowError, match="timed out"):
            listener.wait(timeout=0.2)

    assert 0.2 <= time.monotonic() - started < 2


def test_idle_connection_does_not_block_the_redirect():
    with Listener(STATE) as listener:
        port = int(listener.redirect_uri.rsplit(":", 1)[1].rstrip("/"))
        # A browser's speculative preconnect: a socket that never speaks.
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            get(f"{listener.redirect_uri}?code={CODE}&state={STATE}")
            assert listener.wait(timeout=5)["code"] == CODE


def test_request_line_never_reaches_stderr(capfd):
    with Listener(STATE) as listener:
        get(f"{listener.redirect_uri}?code={CODE}&state={STATE}")
        listener.wait(timeout=5)

    assert CODE not in capfd.readouterr().err


def test_close_releases_the_port():
    listener = Listener(STATE)
    port = int(listener.redirect_uri.rsplit(":", 1)[1].rstrip("/"))
    listener.close()
    listener.close()

    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_wait_from_another_thread_sees_a_late_request():
    with Listener(STATE) as listener:
        timer = threading.Timer(
            0.2, get, [f"{listener.redirect_uri}?code={CODE}&state={STATE}"]
        )
        timer.start()
        params = listener.wait(timeout=5)
        timer.join()

    assert params["code"] == CODE
