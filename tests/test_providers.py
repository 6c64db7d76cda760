"""The preset catalogue: which settings each well-known host gets, and why."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helper.errors import ConfigError
from helper.login import complete_endpoints
from helper.protocol import Credential
from helper.providers import HOSTS, PRESETS, Provider
from helper.settings import resolve

HELPER = str(Path(sys.executable).parent / "oauth-helper")
GITLAB_REALM = 'Basic realm="GitLab"'


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("OAUTH_HELPER_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("OAUTH_HELPER_STORE", "file")
    monkeypatch.delenv("GIT_TERMINAL_PROMPT", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def git_config(home: Path, key: str, value: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(home / "gitconfig")}
    subprocess.run(["git", "config", "--global", key, value], check=True, env=env)


def settings_for(host: str, *wwwauth: str) -> Provider | None:
    cred = Credential(protocol="https", host=host)
    cred.wwwauth.extend(wwwauth)
    return resolve(cred).provider


GITHUB = {
    "preset": "github",
    "auth_url": "https://github.com/login/oauth/authorize",
    "token_url": "https://github.com/login/oauth/access_token",
    "device_auth_url": "https://github.com/login/device/code",
    "issuer": "",
    "authority": "",
    "scope": "gist repo workflow",
    "username": "x-access-token",
    "redirect_url": "",
    # No secret: GitHub refuses public browser-flow codes, so auto -> device.
    "flow": "device",
    "client_id": "",
}
GITLAB = {
    "preset": "gitlab",
    "auth_url": "https://gitlab.com/oauth/authorize",
    "token_url": "https://gitlab.com/oauth/token",
    "device_auth_url": "https://gitlab.com/oauth/authorize_device",
    "issuer": "",
    "authority": "",
    "scope": "read_repository write_repository",
    "username": "oauth2",
    "redirect_url": "",
    "flow": "auto",
    "client_id": "",
}


def gitea(host: str) -> dict[str, object]:
    return {
        "preset": "gitea",
        "auth_url": f"https://{host}/login/oauth/authorize",
        "token_url": f"https://{host}/login/oauth/access_token",
        "device_auth_url": "",
        "issuer": "",
        "authority": "",
        "scope": "",
        "username": "oauth2",
        "redirect_url": "",
        "flow": "auto",
        "client_id": "",
    }


def databricks(host: str) -> dict[str, object]:
    return {
        "preset": "databricks",
        "issuer": f"https://{host}/oidc",
        "discovery_url": f"https://{host}/oidc/.well-known/oauth-authorization-server",
        "auth_url": "",
        "token_url": "",
        "device_auth_url": "",
        "authority": "",
        "scope": "all-apis offline_access",
        "username": "oauth2",
        "client_id": "databricks-cli",
        "redirect_url": "http://localhost:8020",
        "redirect_ports": tuple(range(8021, 8041)),
        "flow": "browser",
        "expiry_margin": 300,
    }


AZURE_DEVOPS = {
    "preset": "azure-devops",
    # MSAL finds the endpoints from the authority and owns the redirect.
    "authority": "https://login.microsoftonline.com/organizations",
    "issuer": "",
    "auth_url": "",
    "token_url": "",
    "device_auth_url": "",
    "scope": "499b84ac-1321-427f-aa17-267ca6975798/.default",
    "username": "oauth2",
    # What Entra's portal registers for a desktop app (any port then works).
    "redirect_url": "http://localhost",
    "client_id": "",
    "flow": "auto",
}

# What every row below must state: where the provider's endpoints come from
# (URLs, an issuer or an authority), what it asks for, and how it signs in.
CHECKED = {
    "auth_url",
    "token_url",
    "device_auth_url",
    "issuer",
    "authority",
    "scope",
    "username",
    "redirect_url",
    "flow",
}

TABLE = [
    ("github.com", GITHUB),
    ("gist.github.com", GITHUB),
    ("GitHub.com", GITHUB),
    ("gitlab.com", GITLAB),
    ("gitea.com", gitea("gitea.com")),
    ("codeberg.org", gitea("codeberg.org")),
    (
        "bitbucket.org",
        {
            "preset": "bitbucket",
            "auth_url": "https://bitbucket.org/site/oauth2/authorize",
            "token_url": "https://bitbucket.org/site/oauth2/access_token",
            "device_auth_url": "",
            "issuer": "",
            "authority": "",
            "scope": "repository repository:write",
            "username": "x-token-auth",
            "redirect_url": "",
            "flow": "auto",
            "secret_required": True,
        },
    ),
    (
        "chromium.googlesource.com",
        {
            "preset": "googlesource",
            "auth_url": "https://accounts.google.com/o/oauth2/v2/auth",
            "token_url": "https://oauth2.googleapis.com/token",
            "device_auth_url": "",
            "issuer": "",
            "authority": "",
            "scope": "https://www.googleapis.com/auth/gerritcodereview",
            "username": "oauth2",
            "redirect_url": "",
            "login_hint": "login_hint",
            "auth_params": {"access_type": "offline"},
            # A secret is required but there is no device endpoint to fall
            # back to, so auto stays auto.
            "flow": "auto",
            "secret_required": True,
        },
    ),
    ("dbc-a1b2.cloud.databricks.com", databricks("dbc-a1b2.cloud.databricks.com")),
    ("adb-12.3.azuredatabricks.net", databricks("adb-12.3.azuredatabricks.net")),
    ("1234.5.gcp.databricks.com", databricks("1234.5.gcp.databricks.com")),
    *(
        (
            host,
            {
                **databricks(host),
                "preset": "databricks-account",
                "issuer": "",
                "discovery_url": "",
            },
        )
        for host in (
            "accounts.cloud.databricks.com",
            "accounts.azuredatabricks.net",
            "accounts.gcp.databricks.com",
        )
    ),
    ("dev.azure.com", AZURE_DEVOPS),
    ("contoso.visualstudio.com", AZURE_DEVOPS),
    (
        "dbc-x.cloud.databricks.com:8443",
        databricks("dbc-x.cloud.databricks.com:8443"),
    ),
]


@pytest.mark.parametrize(("host", "expected"), TABLE, ids=[t[0] for t in TABLE])
def test_every_preset(home: Path, host: str, expected: dict[str, object]) -> None:
    provider = settings_for(host)

    assert provider is not None
    actual = {key: getattr(provider, key) for key in expected}
    assert actual == expected
    assert provider.sources["preset"] == "preset"


def test_every_row_checks_endpoints_scopes_username_redirect_and_flow() -> None:
    missing = {host: CHECKED - set(expected) for host, expected in TABLE}

    assert missing == {host: set() for host, _ in TABLE}


def test_table_covers_every_preset_and_host() -> None:
    hosts = {host.lower() for host, _ in TABLE}
    covered = {expected["preset"] for _, expected in TABLE}

    assert covered == set(PRESETS)
    for pattern in HOSTS:
        assert any(
            h == pattern or (pattern[:2] == "*." and h.endswith(pattern[1:]))
            for h in hosts
        ), pattern


def self_hosted_gitlab(host: str) -> dict[str, object]:
    return {
        "preset": "gitlab",
        "auth_url": f"https://{host}/oauth/authorize",
        "token_url": f"https://{host}/oauth/token",
        "device_auth_url": f"https://{host}/oauth/authorize_device",
        "scope": "read_repository write_repository",
        "username": "oauth2",
        "register_url": f"https://{host}/-/user_settings/applications",
    }


def test_gitlab_detected_by_wwwauth_realm(home: Path) -> None:
    provider = settings_for("code.corp.example", 'Basic realm="GitLab"')

    assert provider is not None
    assert {k: getattr(provider, k) for k in self_hosted_gitlab("x")} == (
        self_hosted_gitlab("code.corp.example")
    )
    assert provider.sources["preset"] == "wwwauth realm"


@pytest.mark.parametrize(
    ("header", "preset"),
    [
        ('Basic realm="Gitea"', "gitea"),
        ('basic REALM="forgejo", charset="UTF-8"', "gitea"),
        ('Basic realm="GitHub"', "github"),
        ("Basic realm=GitLab", "gitlab"),
    ],
)
def test_other_realms(home: Path, header: str, preset: str) -> None:
    provider = settings_for("code.corp.example:8443", 'Bearer error="x"', header)

    assert provider is not None and provider.preset == preset
    assert provider.token_url.startswith("https://code.corp.example:8443/")


def test_unknown_realm_is_not_served(home: Path) -> None:
    assert settings_for("code.corp.example", 'Basic realm="Jenkins"') is None
    assert settings_for("code.corp.example") is None


def test_a_databricks_account_console_asks_for_its_issuer(home: Path) -> None:
    # Its issuer is /oidc/accounts/<account ID>, which the name cannot tell.
    provider = settings_for("accounts.cloud.databricks.com")

    assert provider is not None and provider.preset == "databricks-account"
    with pytest.raises(ConfigError) as missing:
        complete_endpoints(provider, "accounts.cloud.databricks.com")
    assert str(missing.value) == (
        "no token endpoint for accounts.cloud.databricks.com: set its oauthIssuer "
        "(https://accounts.cloud.databricks.com/oidc/accounts/<account ID>), or "
        "oauthAuthURL and oauthTokenURL"
    )


def test_a_databricks_account_console_with_its_issuer(home: Path) -> None:
    issuer = "https://accounts.cloud.databricks.com/oidc/accounts/abc-123"
    git_config(
        home, "credential.https://accounts.cloud.databricks.com.oauthIssuer", issuer
    )

    provider = settings_for("accounts.cloud.databricks.com")

    assert provider is not None
    assert (provider.issuer, provider.discovery_url) == (issuer, "")
    assert (provider.client_id, provider.redirect_url) == (
        "databricks-cli",
        "http://localhost:8020",
    )


TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize(
    "challenge",
    [
        f"Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}",
        f'bearer realm="", authorization_uri="https://login.microsoftonline.com/{TENANT}/"',
        f'Bearer realm="a, b", authorization_uri="https://login.microsoftonline.com/{TENANT}"',
    ],
)
def test_azure_devops_takes_the_tenant_its_401_names(
    home: Path, challenge: str
) -> None:
    provider = settings_for(
        "dev.azure.com", 'Basic realm="https://dev.azure.com/"', challenge
    )

    assert provider is not None
    assert provider.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert provider.sources["authority"] == "wwwauth"


@pytest.mark.parametrize(
    "challenge",
    [
        # Another login host: the remote must not choose where to sign in.
        f"Bearer authorization_uri=https://login.example.com/{TENANT}",
        "Bearer authorization_uri=https://login.microsoftonline.com/a/../../x",
        "Bearer authorization_uri=https://login.microsoftonline.com/",
        # Dots alone are no tenant: /.. would drop the tenant from the path.
        "Bearer authorization_uri=https://login.microsoftonline.com/..",
        "Bearer authorization_uri=https://login.microsoftonline.com/.",
        "Bearer authorization_uri=https://login.microsoftonline.com/a..b",
        "Bearer authorization_uri=https://login.microsoftonline.com/-x",
        # One quoted value, comma and all: not cut short to "t".
        'Bearer authorization_uri="https://login.microsoftonline.com/t,x"',
        f"Basic authorization_uri=https://login.microsoftonline.com/{TENANT}",
    ],
)
def test_azure_devops_ignores_a_challenge_naming_no_entra_tenant(
    home: Path, challenge: str
) -> None:
    provider = settings_for("dev.azure.com", challenge)

    assert provider is not None
    assert provider.authority == "https://login.microsoftonline.com/organizations"


def test_a_configured_authority_outranks_the_challenge(home: Path) -> None:
    git_config(
        home,
        "credential.https://dev.azure.com.oauthAuthority",
        "https://login.microsoftonline.com/contoso.onmicrosoft.com",
    )

    provider = settings_for(
        "dev.azure.com",
        f"Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}",
    )

    assert provider is not None
    assert provider.authority.endswith("/contoso.onmicrosoft.com")


def test_other_hosts_ignore_an_entra_challenge(home: Path) -> None:
    provider = settings_for(
        "gitlab.com",
        f"Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}",
    )

    assert provider is not None and provider.authority == ""


def test_relative_endpoints_are_paths_on_the_remote(home: Path) -> None:
    # As git-credential-oauth documents them for self-hosted GitLab.
    url = "credential.https://code.corp.example:8443"
    git_config(home, f"{url}.oauthAuthURL", "/oauth/authorize")
    git_config(home, f"{url}.oauthTokenURL", "/oauth/token")
    git_config(home, f"{url}.oauthDeviceAuthURL", "/oauth/authorize_device")

    provider = settings_for("code.corp.example:8443")

    assert provider is not None
    assert provider.auth_url == "https://code.corp.example:8443/oauth/authorize"
    assert provider.token_url == "https://code.corp.example:8443/oauth/token"
    assert provider.device_auth_url == (
        "https://code.corp.example:8443/oauth/authorize_device"
    )
    assert provider.sources["token_url"] == "git config"


def test_a_network_path_is_not_taken_as_the_remotes_own(home: Path) -> None:
    git_config(
        home, "credential.https://code.corp.example.oauthTokenURL", "//x.example/t"
    )

    with pytest.raises(ConfigError, match="oauthTokenURL in git config must be an"):
        settings_for("code.corp.example")


def test_self_hosted_detected_by_host_name(home: Path) -> None:
    gitlab = settings_for("gitlab.corp.example")
    forgejo = settings_for("forgejo.corp.example")

    assert gitlab is not None and forgejo is not None
    assert gitlab.sources["preset"] == "host name"
    assert gitlab.token_url == "https://gitlab.corp.example/oauth/token"
    assert forgejo.auth_url == "https://forgejo.corp.example/login/oauth/authorize"


def test_configured_server_is_not_second_guessed(home: Path) -> None:
    git_config(
        home, "credential.https://gitlab.corp.example.oauthIssuer", "https://id.example"
    )

    provider = settings_for("gitlab.corp.example", GITLAB_REALM)

    assert provider is not None
    assert provider.preset == ""
    assert provider.scopes == ()
    assert provider.token_url == ""


def test_client_id_alone_keeps_the_detected_preset(home: Path) -> None:
    git_config(home, "credential.https://code.corp.example.oauthClientId", "cid")

    provider = settings_for("code.corp.example", GITLAB_REALM)

    assert provider is not None
    assert provider.client_id == "cid"
    assert provider.token_url == "https://code.corp.example/oauth/token"


def test_github_enterprise_by_config(home: Path) -> None:
    git_config(home, "credential.https://ghe.corp.example.oauthPreset", "github")
    git_config(home, "credential.https://ghe.corp.example.oauthClientId", "cid")
    git_config(home, "credential.https://ghe.corp.example.oauthClientSecret", "s3")

    provider = settings_for("ghe.corp.example")

    assert provider is not None
    assert provider.auth_url == "https://ghe.corp.example/login/oauth/authorize"
    assert provider.device_auth_url == "https://ghe.corp.example/login/device/code"
    assert provider.sources["preset"] == "git config"
    # With a secret the browser flow works, so auto stays auto.
    assert provider.flow == "auto"


def test_preset_from_file(home: Path) -> None:
    folder = home / "config" / "oauth-helper"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(
        '[hosts."git.corp.example"]\npreset = "gitea"\nredirect_ports = [8021, 8022]\n'
        'auth_params = { prompt = "consent" }\n'
    )

    provider = settings_for("git.corp.example")

    assert provider is not None
    assert provider.preset == "gitea"
    assert provider.sources["preset"] == "file"
    assert provider.redirect_ports == (8021, 8022)
    assert provider.auth_params == {"prompt": "consent"}


def test_unknown_preset_is_a_config_error(home: Path) -> None:
    git_config(home, "credential.https://git.corp.example.oauthPreset", "sourceforge")

    expected = "oauthPreset in git config must be one of github"
    with pytest.raises(ConfigError, match=expected):
        settings_for("git.corp.example")


def test_authority_from_git_config(home: Path) -> None:
    authority = "https://login.microsoftonline.com/contoso.example"
    git_config(home, "credential.https://git.corp.example.oauthAuthority", authority)
    git_config(home, "credential.https://dev.azure.com.oauthAuthority", authority)

    mine = settings_for("git.corp.example")
    devops = settings_for("dev.azure.com")

    assert mine is not None and devops is not None
    assert mine.authority == devops.authority == authority
    assert devops.sources["authority"] == "git config"
    assert devops.scope == "499b84ac-1321-427f-aa17-267ca6975798/.default"


@pytest.mark.parametrize(
    ("value", "ports"),
    [("8021-8023", (8021, 8022, 8023)), ("9000, 9005", (9000, 9005)), ("7", (7,))],
)
def test_redirect_ports_from_git_config(home: Path, value: str, ports: tuple) -> None:
    git_config(
        home, "credential.https://dbc-a.cloud.databricks.com.oauthRedirectPorts", value
    )

    provider = settings_for("dbc-a.cloud.databricks.com")

    assert provider is not None and provider.redirect_ports == ports


@pytest.mark.parametrize("value", ["80-x", "0", "70000", "-"])
def test_bad_redirect_ports(home: Path, value: str) -> None:
    git_config(home, "credential.https://git.corp.example.oauthRedirectPorts", value)

    with pytest.raises(ConfigError, match="oauthRedirectPorts"):
        settings_for("git.corp.example")


def test_auth_params_flow_and_secret_per_host(home: Path) -> None:
    base = "credential.https://github.com."
    git_config(
        home, base + "oauthAuthParams", "prompt=select_account&allow_signup=false"
    )
    git_config(home, base + "oauthFlow", "browser")
    git_config(home, base + "oauthClientSecret", "not-really-secret")

    provider = settings_for("github.com")

    assert provider is not None
    assert provider.auth_params == {"prompt": "select_account", "allow_signup": "false"}
    assert provider.flow == "browser"
    assert "not-really-secret" not in repr(provider)


def run_get(home: Path, request: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``get`` as a user at a desktop runs it: a browser could be shown."""
    return subprocess.run(
        [HELPER, "get"],
        input=request,
        capture_output=True,
        text=True,
        env={**os.environ, "BROWSER": "true", **env},
        timeout=30,
    )


def run_get_unattended(home: Path, request: str) -> subprocess.CompletedProcess[str]:
    """``get`` with nobody there: no browser, no controlling terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "DISPLAY")}
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run(
        [HELPER, "get"],
        input=request,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        start_new_session=True,
    )


def test_miss_explains_registration_in_one_line(home: Path) -> None:
    done = run_get(
        home,
        f"protocol=https\nhost=code.corp.example\nwwwauth[]={GITLAB_REALM}\n\n",
    )

    again = run_get(
        home,
        f"protocol=https\nhost=code.corp.example\nwwwauth[]={GITLAB_REALM}\n\n",
    )

    assert done.returncode == 0
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "GitLab needs an OAuth client ID" in done.stderr
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert "https://code.corp.example/-/user_settings/applications" in done.stderr
    assert (
        "git config --global credential.https://code.corp.example.oauthClientId <ID>"
        in done.stderr
    )


def test_with_nobody_there_the_advice_is_not_used_up(home: Path) -> None:
    # An IDE's log or a cron mail: the line is not counted as seen, so the
    # first fetch from a terminal still shows it.
    request = "protocol=https\nhost=gitlab.com\n\n"

    unattended = [run_get_unattended(home, request) for _ in range(2)]
    at_desk = run_get(home, request)

    for done in unattended:
        assert (done.returncode, done.stdout) == (0, "")
        assert "GitLab needs an OAuth client ID" in done.stderr
    assert "GitLab needs an OAuth client ID" in at_desk.stderr
    assert run_get(home, request).stderr == ""


def test_miss_names_the_secret_where_one_is_required(home: Path) -> None:
    done = run_get(home, "protocol=https\nhost=bitbucket.org\n\n")

    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert (
        "oauthClientId <ID> && git config --global "
        "credential.https://bitbucket.org.oauthClientSecret <SECRET>" in done.stderr
    )


@pytest.mark.parametrize(
    ("host", "choices"),
    [
        # The helper uses the device flow without a secret: GitHub turns it
        # on per app.
        ("github.com", "(callback URL http://127.0.0.1/, Enable Device Flow ticked)"),
        (
            "gitlab.com",
            "(redirect URI http://127.0.0.1/, Confidential unticked, "
            "scopes read_repository and write_repository)",
        ),
        (
            "codeberg.org",
            "(redirect URI http://127.0.0.1/, Confidential client unticked)",
        ),
        ("go.googlesource.com", "(an OAuth client ID of type Desktop app)"),
        (
            "dev.azure.com",
            "(platform Mobile and desktop applications, redirect URI "
            "http://localhost, Allow public client flows: Yes, API permission "
            "Azure DevOps user_impersonation)",
        ),
    ],
)
def test_miss_says_what_to_choose_when_registering(
    home: Path, host: str, choices: str
) -> None:
    done = run_get(home, f"protocol=https\nhost={host}\n\n")

    assert (done.returncode, done.stdout) == (0, "")
    assert choices in done.stderr


def test_miss_shows_a_configured_redirect_uri(home: Path) -> None:
    git_config(
        home, "credential.https://gitlab.com.oauthRedirectURL", "http://127.0.0.1:7777/"
    )

    done = run_get(home, "protocol=https\nhost=gitlab.com\n\n")

    assert "(redirect URI http://127.0.0.1:7777/, Confidential" in done.stderr


def test_non_interactive_miss_is_silent(home: Path) -> None:
    done = run_get(
        home,
        f"protocol=https\nhost=code.corp.example\nwwwauth[]={GITLAB_REALM}\n\n",
        GIT_TERMINAL_PROMPT="0",
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_host_with_an_escape_sequence_is_shown_escaped(home: Path) -> None:
    # What a request says reaches stderr; it must not set the terminal's title.
    done = run_get(home, "protocol=https\nhost=gitlab.ev\x1b]0;PWNED\x07il.example\n\n")

    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert "gitlab.ev\\x1b]0;PWNED\\x07il.example" in done.stderr
    assert done.stderr.count("\n") == 1
