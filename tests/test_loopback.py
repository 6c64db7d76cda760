"""helper.loopback with real HTTP requests from this process."""

import contextlib
import logging
import os
import socket
import threading
import time
import tty
import urllib.error
import urllib.request

import pytest

from helper import loopback
from helper import terminal as tty_module
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


def test_the_page_claims_no_more_than_a_received_code():
    with Listener(STATE) as listener:
        status, body = get(f"{listener.redirect_uri}?code={CODE}&state={STATE}")
        listener.wait(timeout=5)

    assert status == 200
    assert "Sign-in received" in body and "terminal shows the outcome" in body
    assert "Signed in" not in body


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


def test_a_busy_port_gives_way_to_the_next_with_one_warning(caplog):
    first, second = free_port(), free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first))
        squatter.listen()
        with (
            caplog.at_level(logging.WARNING, logger="helper.loopback"),
            Listener(STATE, f"http://localhost:{first}", (second,)) as listener,
        ):
            redirect_uri = listener.redirect_uri

    assert redirect_uri == f"http://localhost:{second}"
    assert [r.getMessage() for r in caplog.records] == [
        f"redirect port {first} is busy, using {second}: if the sign-in page "
        f"refuses the redirect URI, free port {first} and try again"
    ]


def test_the_first_port_free_means_no_warning(caplog):
    first, second = free_port(), free_port()
    with (
        caplog.at_level(logging.WARNING, logger="helper.loopback"),
        Listener(STATE, f"http://localhost:{first}", (second,)) as listener,
    ):
        redirect_uri = listener.redirect_uri

    assert redirect_uri == f"http://localhost:{first}"
    assert caplog.records == []


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


# The paste fallback, with a pseudo-terminal standing in for /dev/tty.


@pytest.fixture
def terminal(monkeypatch):
    """A pty whose slave is "the terminal"; returns the master, to type into."""
    master, slave = os.openpty()
    monkeypatch.setattr(tty_module, "DEVICE", os.ttyname(slave))
    yield master
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def logged(caplog, monkeypatch):
    """The listener's log records so far, DEBUG included, as (level, text)."""
    # The CLI's stderr handler, once attached, stops propagation to caplog.
    monkeypatch.setattr(logging.getLogger("helper"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="helper.loopback")

    def records():
        return [
            (record.levelno, record.getMessage())
            for record in caplog.records
            if record.name == "helper.loopback"
        ]

    return records


def warnings_of(records):
    return [text for level, text in records if level == logging.WARNING]


def type_into(master, text):
    os.write(master, text.encode())


def terminal_fds(terminal_path):
    """How many of this process's descriptors refer to *terminal_path*."""
    links = (os.path.join("/proc/self/fd", fd) for fd in os.listdir("/proc/self/fd"))
    return sum(1 for link in links if _readlink(link) == terminal_path)


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:  # the descriptor listdir itself used, closed since
        return ""


@pytest.mark.parametrize(
    "address",
    [
        "{uri}?code={code}&state={state}&iss=x",
        # Trimmed; another host and port are not looked at; no "/" path.
        "  http://localhost:1?code={code}&state={state}&iss=x \t",
    ],
)
def test_a_pasted_address_counts_as_the_redirect(terminal, logged, address):
    with Listener(STATE) as listener:
        pasted = address.format(uri=listener.redirect_uri, code=CODE, state=STATE)
        type_into(terminal, pasted + "\n")
        params = listener.wait(timeout=5, paste=True)

    assert params == {"code": CODE, "state": STATE, "iss": "x"}
    assert warnings_of(logged()) == [loopback._PASTE_PROMPT]
    assert "paste the address it ended on" in loopback._PASTE_PROMPT
    assert not any(CODE in text for _, text in logged())


def test_a_refused_paste_gets_one_line_and_the_wait_goes_on(terminal, logged):
    with Listener(STATE, "http://127.0.0.1/callback") as listener:
        uri = listener.redirect_uri
        refused = [
            f"{uri}?code=stale-code&state=an-old-state",
            f"{uri}?state={STATE}",
            f"{uri.removesuffix('/callback')}/other?code={CODE}&state={STATE}",
            "not an address at all",
            "http://[::1/?code=x",
        ]
        type_into(
            terminal, "\n".join([*refused, "", f"{uri}?code={CODE}&state={STATE}"])
        )
        type_into(terminal, "\n")
        params = listener.wait(timeout=5, paste=True)

    assert params["code"] == CODE
    prompt, *refusals = warnings_of(logged())
    assert prompt == loopback._PASTE_PROMPT
    assert len(refusals) == len(refused)
    assert "stale or was not started here" in refusals[0]
    assert "incomplete" in refusals[1]
    assert all("not accepted" in line and "\n" not in line for line in refusals)
    assert not any(CODE in text or "stale-code" in text for _, text in logged())


def test_a_redirect_ends_a_paste_aware_wait_and_frees_the_terminal(terminal, logged):
    path = tty_module.DEVICE
    before = terminal_fds(path)
    during = []

    def redirect(url):
        during.append(terminal_fds(path))
        get(url)

    with Listener(STATE) as listener:
        url = f"{listener.redirect_uri}?code={CODE}&state={STATE}"
        timer = threading.Timer(0.3, redirect, [url])
        timer.start()
        started = time.monotonic()
        params = listener.wait(timeout=10, paste=True)
        took = time.monotonic() - started
        timer.join()
        # Nothing keeps reading the terminal once the wait has returned.
        assert terminal_fds(path) == before

    assert params["code"] == CODE
    assert during == [before + 1]
    assert took < 2


def test_a_paste_aware_wait_times_out_with_the_usual_error(terminal, logged):
    before = terminal_fds(tty_module.DEVICE)
    with Listener(STATE) as listener:
        started = time.monotonic()
        with pytest.raises(FlowError, match=r"timed out after 0\.3 s"):
            listener.wait(timeout=0.3, paste=True)

    assert 0.3 <= time.monotonic() - started < 2
    assert terminal_fds(tty_module.DEVICE) == before


def test_a_hung_up_terminal_still_leaves_the_redirect(terminal, logged):
    os.close(terminal)  # the master gone: reads on the slave fail (EIO)
    with Listener(STATE) as listener:
        url = f"{listener.redirect_uri}?code={CODE}&state={STATE}"
        timer = threading.Timer(0.3, get, [url])
        timer.start()
        params = listener.wait(timeout=10, paste=True)
        timer.join()

    assert params["code"] == CODE


def test_enter_as_cr_and_a_line_in_pieces_in_raw_mode(terminal, logged):
    tty.setraw(terminal)
    with Listener(STATE) as listener:
        url = f"{listener.redirect_uri}?code={CODE}&state={STATE}"
        type_into(terminal, url[:20])
        timer = threading.Timer(0.3, type_into, [terminal, url[20:] + "\r"])
        timer.start()
        params = listener.wait(timeout=10, paste=True)
        timer.join()

    assert params["code"] == CODE


def test_no_terminal_means_no_prompt(tmp_path, monkeypatch, logged):
    monkeypatch.setattr(tty_module, "DEVICE", str(tmp_path / "no-such-tty"))
    with Listener(STATE) as listener, pytest.raises(FlowError, match="timed out"):
        listener.wait(timeout=0.2, paste=True)

    assert warnings_of(logged()) == []


def test_without_paste_the_terminal_is_not_read(terminal, logged):
    with Listener(STATE) as listener:
        type_into(terminal, f"{listener.redirect_uri}?code={CODE}&state={STATE}\n")
        with pytest.raises(FlowError, match="timed out"):
            listener.wait(timeout=0.2)

    assert warnings_of(logged()) == []


def test_a_redirect_url_that_cannot_be_split_is_a_config_error():
    with pytest.raises(ConfigError, match="redirect_url is not a URL"):
        loopback.parse_redirect("http://[::1")
