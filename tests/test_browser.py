"""helper.browser: a browser must never write to our stdout, read our stdin,
or hold the sign-in while it runs.

The fd cases run the helper's code in a child Python whose fds 0 and 1 are
pipes the test controls, as git's are.
"""

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from helper import browser

URL = "https://id.example/authorize?state=abc"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Reads our stdin, writes its stdout, then leaves a grandchild that writes
# again after open_url has returned, as a detaching real browser would.
NOISY_BROWSER = """\
#!/bin/sh
echo "browser-stdout $1"
if read line; then echo "browser-stole:$line" >&2; fi
echo "$1" > "$MARKER"
(sleep 0.3; echo late-browser-output) &
exit 0
"""

# Stays in the foreground, as a browser run without "&" does; leaves its pid
# (the id of the session it leads, if it got one) and then its arguments.
SLEEPY_BROWSER = """\
#!/bin/sh
echo $$ > "$PIDFILE"
echo "$@" > "$MARKER.part" && mv "$MARKER.part" "$MARKER"
exec sleep 30
"""

CHILD = textwrap.dedent(
    """
    import sys, time
    from helper.browser import open_url
    launched = open_url(sys.argv[1])
    print("launched", launched, flush=True)
    print("stdin", sys.stdin.readline().strip(), flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def run_child(env_extra, wait=0.0):
    env = {k: v for k, v in os.environ.items() if k != "BROWSER"}
    env.update(env_extra, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-c", CHILD, URL, str(wait)],
        input="protocol=https\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    )


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_browser_output_goes_to_stderr_not_stdout(tmp_path):
    marker = tmp_path / "opened"
    noisy = script(tmp_path, "noisy-browser", NOISY_BROWSER)

    result = run_child({"BROWSER": str(noisy), "MARKER": str(marker)}, wait=0.6)

    assert marker.read_text().strip() == URL
    assert result.stdout == "launched True\nstdin protocol=https\n"
    assert f"browser-stdout {URL}" in result.stderr
    assert "late-browser-output" in result.stderr
    assert "browser-stole" not in result.stderr


def test_a_browser_failing_after_its_start_still_counts_as_launched(tmp_path):
    # The helper no longer waits for the command, so its exit status is not
    # seen; the URL shown before the browser starts covers this case.
    failing = script(tmp_path, "failing-browser", "#!/bin/sh\nsleep 0.3\nexit 3\n")

    result = run_child({"BROWSER": str(failing)})

    assert result.stdout == "launched True\nstdin protocol=https\n"


def test_missing_browser_reports_false(tmp_path):
    result = run_child({"BROWSER": str(tmp_path / "no-such-browser")})

    assert result.stdout == "launched False\nstdin protocol=https\n"


def test_browser_change_within_a_process_is_honoured(tmp_path):
    # The browsers run on after open_url returns: one marker each.
    body = '#!/bin/sh\necho "$1" > "$MARKER.$(basename "$0")"\n'
    first = script(tmp_path, "first", body)
    second = script(tmp_path, "second", body)
    marker = tmp_path / "marker"
    code = textwrap.dedent(
        f"""
        import os
        from helper.browser import open_url
        os.environ["BROWSER"] = {str(first)!r}
        open_url("https://a.example/")
        os.environ["BROWSER"] = {str(second)!r}
        open_url("https://b.example/")
        """
    )
    env = {**os.environ, "PYTHONPATH": ROOT, "MARKER": str(marker)}

    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)

    assert wait_for(tmp_path / "marker.first") == "https://a.example/"
    assert wait_for(tmp_path / "marker.second") == "https://b.example/"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SSH_CONNECTION": "1.2.3.4 5 6.7.8.9 22", "DISPLAY": ":0"}, False),
        ({"SSH_TTY": "/dev/pts/1", "BROWSER": "firefox"}, False),
        ({}, False),
        ({"DISPLAY": ":0"}, True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, True),
        ({"BROWSER": "/usr/bin/true"}, True),
    ],
)
def test_can_open_browser(monkeypatch, env, expected):
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("SSH_CONNECTION", "SSH_TTY", "DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert browser.can_open_browser() is expected


def test_can_open_browser_elsewhere_without_display(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    for name in ("SSH_CONNECTION", "SSH_TTY", "DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)

    assert browser.can_open_browser() is True


def test_open_url_restores_our_fds(tmp_path, monkeypatch, capfd):
    body = '#!/bin/sh\necho to-stdout\necho done > "$MARKER"\nsleep 0.3\n'
    quiet = script(tmp_path, "quiet", body)
    monkeypatch.setenv("BROWSER", str(quiet))
    monkeypatch.setenv("MARKER", str(tmp_path / "marker"))
    before = os.fstat(1), os.fstat(0)

    assert browser.open_url(URL) is True
    print("after", flush=True)

    after = os.fstat(1), os.fstat(0)
    assert [(s.st_dev, s.st_ino) for s in before] == [
        (s.st_dev, s.st_ino) for s in after
    ]
    assert wait_for(tmp_path / "marker") == "done"
    captured = capfd.readouterr()
    assert captured.out == "after\n"
    assert "to-stdout" in captured.err


@pytest.fixture
def sleepy(tmp_path, monkeypatch):
    """SLEEPY_BROWSER, its marker and pid files; its process group ends after."""
    marker, pidfile = tmp_path / "opened", tmp_path / "browser.pid"
    monkeypatch.setenv("MARKER", str(marker))
    monkeypatch.setenv("PIDFILE", str(pidfile))
    yield script(tmp_path, "sleepy-browser", SLEEPY_BROWSER), marker, pidfile
    if pidfile.exists():
        stop(int(pidfile.read_text()))


def stop(pid):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    # Reap it here; subprocess, which started it, may not get to.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_a_browser_in_the_foreground_does_not_block(sleepy, monkeypatch):
    command, marker, pidfile = sleepy
    monkeypatch.setenv("BROWSER", str(command))

    started = time.monotonic()
    launched = browser.open_url(URL)
    elapsed = time.monotonic() - started

    assert launched is True
    assert elapsed < 2
    assert wait_for(marker) == URL
    pid = int(pidfile.read_text())
    # Still sleeping, detached: it leads a session of its own.
    assert os.getsid(pid) == pid != os.getsid(0)


@pytest.mark.parametrize(
    ("value", "arguments"),
    [
        ("{browser} --new-tab %s", "--new-tab {url}"),
        ("{browser} --url=%s &", "--url={url}"),
        ("{missing}{sep}{browser}", "{url}"),
        ("{missing} %s{sep}{sep}{browser} %s", "{url}"),
    ],
)
def test_browser_value_is_read_as_webbrowser_documents(
    sleepy, monkeypatch, tmp_path, value, arguments
):
    command, marker, _ = sleepy
    names = {
        "browser": shlex.quote(str(command)),
        "missing": str(tmp_path / "no-such-browser"),
        "sep": os.pathsep,
        "url": URL,
    }
    monkeypatch.setenv("BROWSER", value.format(**names))

    assert browser.open_url(URL) is True
    assert wait_for(marker) == arguments.format(**names)


@pytest.mark.parametrize("value", ["{missing}", "{missing} --url=%s", "'%s"])
def test_a_browser_that_cannot_start_reports_false(monkeypatch, tmp_path, value):
    missing = str(tmp_path / "no-such-browser")
    monkeypatch.setenv("BROWSER", value.format(missing=missing))

    assert browser.open_url(URL) is False


def test_a_browser_command_that_returns_at_once_counts_as_started(
    monkeypatch, tmp_path
):
    # As BROWSER commands are meant to: hand the URL on and exit 0 at once.
    # Counting only commands still running just after the spawn was a race.
    quick = script(tmp_path, "quick", '#!/bin/sh\necho "$1" >> "$MARKER"\n')
    monkeypatch.setenv("BROWSER", str(quick))
    monkeypatch.setenv("MARKER", str(tmp_path / "opened"))

    assert [browser.open_url(URL) for _ in range(20)] == [True] * 20
    assert (tmp_path / "opened").read_text().splitlines() == [URL] * 20


def test_a_browser_command_that_fails_gives_way_to_the_next(monkeypatch, tmp_path):
    failing = script(tmp_path, "failing", '#!/bin/sh\necho "$1" > "$FAILED"\nexit 3\n')
    quick = script(tmp_path, "quick", '#!/bin/sh\necho "$1" > "$MARKER"\n')
    monkeypatch.setenv("FAILED", str(tmp_path / "failed"))
    monkeypatch.setenv("MARKER", str(tmp_path / "opened"))

    monkeypatch.setenv("BROWSER", str(failing))
    assert browser.open_url(URL) is False
    assert (tmp_path / "failed").read_text().strip() == URL

    monkeypatch.setenv("BROWSER", f"{failing}{os.pathsep}{quick}")
    assert browser.open_url(URL) is True
    assert (tmp_path / "opened").read_text().strip() == URL


def wait_for(path, timeout=10.0):
    """The stripped text of *path* once a browser has written it."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)
    return path.read_text().strip()


CLOSED_CHILD = """
import os, sys
from helper.browser import open_url
launched = open_url(sys.argv[1])
try:
    os.fstat(1)
    still = "open"
except OSError:
    still = "closed"
print("launched", launched, "stdout", still, file=sys.stderr)
"""


def test_a_closed_stdout_stays_closed_and_the_browser_still_starts(tmp_path):
    marker = tmp_path / "opened"
    quick = script(tmp_path, "quick", '#!/bin/sh\necho "$1" > "$MARKER"\n')
    env = {k: v for k, v in os.environ.items() if k != "BROWSER"}
    env.update(BROWSER=str(quick), MARKER=str(marker), PYTHONPATH=ROOT)

    done = subprocess.run(
        ["sh", "-c", 'exec "$0" -c "$1" "$2" >&-', sys.executable, CLOSED_CHILD, URL],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )

    assert (done.returncode, done.stderr) == (0, "launched True stdout closed\n")
    assert marker.read_text().strip() == URL
