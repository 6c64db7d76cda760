"""Fixtures for the integration rig: a CA, the OpenID provider, a git server.

Everything listens on 127.0.0.1; nothing reaches the network.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from rig.ca import RigCA, create_ca
from rig.gitserver import GitServer
from rig.idp import Provider, ProviderNotInstalled, start_provider

RIG_DIR = Path(__file__).parent / "rig"
OPEN_BROWSER = RIG_DIR / "open-browser"

# pytest need not walk tests/rig (scripts and node_modules, no tests).
collect_ignore = ["rig"]

# Variables that would point the helper, git or the browser at the caller's
# own setup: git state (GIT_DIR from a hook, GIT_TERMINAL_PROMPT, ...), a
# display, a session bus with a real keyring, proxies.
INHERITED_PREFIXES = ("GIT_", "OAUTH_HELPER_", "XDG_")
INHERITED_NAMES = {
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "DBUS_SESSION_BUS_ADDRESS",
    "BROWSER",
    "SSH_ASKPASS",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
}
CA_VARIABLES = (
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
)


@pytest.fixture(scope="session")
def rig_cert_names() -> tuple[str, ...]:
    """Names the provider's certificate covers; override to add test hosts."""
    return ("127.0.0.1", "localhost")


@pytest.fixture(scope="session")
def rig_ca(
    tmp_path_factory: pytest.TempPathFactory, rig_cert_names: tuple[str, ...]
) -> RigCA:
    """A trustme CA (ca.pem) and a server certificate for rig_cert_names."""
    return create_ca(tmp_path_factory.mktemp("rig-ca"), rig_cert_names)


@pytest.fixture(scope="session")
def provider(
    tmp_path_factory: pytest.TempPathFactory, rig_ca: RigCA
) -> Iterator[Provider]:
    """The OpenID provider (node tests/rig/provider.js), one per session."""
    log_path = tmp_path_factory.mktemp("rig-provider") / "provider.log"
    try:
        running = start_provider(
            rig_ca.ca_path, rig_ca.cert_path, rig_ca.key_path, log_path
        )
    except ProviderNotInstalled as error:
        pytest.fail(str(error), pytrace=False)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def tenant(
    tmp_path_factory: pytest.TempPathFactory, rig_ca: RigCA
) -> Iterator[Provider]:
    """A second provider, under /tenant: MSAL's oidc_authority needs a path."""
    log_path = tmp_path_factory.mktemp("rig-tenant") / "provider.log"
    running = start_provider(
        rig_ca.ca_path,
        rig_ca.cert_path,
        rig_ca.key_path,
        log_path,
        issuer_path="/tenant",
    )
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _provider_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give each test that uses the shared provider zero counts and default knobs."""
    if "provider" not in request.fixturenames:
        yield
        return
    running: Provider = request.getfixturevalue("provider")
    running.reset()
    yield
    running.restore_defaults()


@pytest.fixture
def git_server(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider, rig_ca: RigCA
) -> Iterator[GitServer]:
    """A git smart-HTTP server with a fresh repo.git, accepting active tokens."""
    root = tmp_path_factory.mktemp("git-server")
    server = GitServer(
        root, provider.admin_url(provider.introspection_endpoint), rig_ca.ca_path
    )
    with server:
        yield server


@pytest.fixture
def rig_log_dir(tmp_path: Path) -> Path:
    """Where open-browser writes one browser-*.log per run in this test."""
    directory = tmp_path / "rig-logs"
    directory.mkdir()

    return directory


@pytest.fixture
def helper_env(tmp_path: Path, rig_ca: RigCA, rig_log_dir: Path) -> dict[str, str]:
    """Environment for the helper and git as subprocesses, isolated in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not _inherited(k)}
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    for name, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
    ):
        env[name] = str(home / sub)
    env.update(_git_variables(tmp_path))
    env.update(dict.fromkeys(CA_VARIABLES, rig_ca.ca_path))
    env.update(
        BROWSER=str(OPEN_BROWSER.resolve()),
        OAUTH_RIG_LOG_DIR=str(rig_log_dir),
        OAUTH_RIG_PYTHON=sys.executable,
        OAUTH_HELPER_STORE="file",
        NO_PROXY="127.0.0.1,localhost,.localhost",
        # The venv's bin first: the helper's console scripts and its python,
        # not a pyenv shim (~100 ms per start).
        PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]),
    )

    return env


def _inherited(name: str) -> bool:
    upper = name.upper()

    return (
        name in INHERITED_NAMES
        or upper in INHERITED_NAMES
        or upper.startswith(INHERITED_PREFIXES)
    )


def _git_variables(tmp_path: Path) -> dict[str, str]:
    """A private global gitconfig with an identity, so tests can commit."""
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Rig Test\n\temail = rig-test@example.test\n"
        "[init]\n\tdefaultBranch = main\n"
    )

    return {"GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the provider's log (grant.error reasons) to a failing test."""
    report = yield
    running = getattr(item, "funcargs", {}).get("provider")
    if report.failed and isinstance(running, Provider):
        report.sections.append(("provider.js stderr", running.log_tail()))

    return report
