"""helper.browser: a browser must never write to our stdout or read our stdin.

Each case runs the helper's code in a child Python whose fds 0 and 1 are pipes
the test controls, as git's are.
"""

import os
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


def test_failing_browser_reports_false(tmp_path):
    failing = script(tmp_path, "failing-browser", "#!/bin/sh\nexit 3\n")

    result = run_child({"BROWSER": str(failing)})

    assert result.stdout == "launched False\nstdin protocol=https\n"


def test_missing_browser_reports_false(tmp_path):
    result = run_child({"BROWSER": str(tmp_path / "no-such-browser")})

    assert result.stdout == "launched False\nstdin protocol=https\n"


def test_browser_change_within_a_process_is_honoured(tmp_path):
    first = script(tmp_path, "first", '#!/bin/sh\necho first > "$MARKER"\n')
    second = script(tmp_path, "second", '#!/bin/sh\necho second > "$MARKER"\n')
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

    assert marker.read_text().strip() == "second"


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
    quiet = script(tmp_path, "quiet", "#!/bin/sh\necho to-stdout\nexit 0\n")
    monkeypatch.setenv("BROWSER", str(quiet))
    before = os.fstat(1), os.fstat(0)

    started = time.monotonic()
    assert browser.open_url(URL) is True
    print("after", flush=True)

    after = os.fstat(1), os.fstat(0)
    assert [(s.st_dev, s.st_ino) for s in before] == [
        (s.st_dev, s.st_ino) for s in after
    ]
    captured = capfd.readouterr()
    assert captured.out == "after\n"
    assert "to-stdout" in captured.err
    assert time.monotonic() - started < 10
