"""``oauth-helper explain`` and discovery failures, through the executable."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flows.fakeserver import FakeServer, Reply

from helper.errors import ConfigError
from helper.loopback import Listener

HELPER = str(Path(sys.executable).parent / "oauth-helper")
OIDC = "/.well-known/openid-configuration"
SECRET = "explain-test-client-secret"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("")
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "OAUTH_"))
    }
    environ.update(
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        OAUTH_HELPER_HOME=str(tmp_path / "state"),
        OAUTH_HELPER_STORE="file",
    )
    environ.pop("BROWSER", None)
    environ.pop("DISPLAY", None)
    return environ


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def git_config(env: dict[str, str], url: str, **values: str) -> None:
    for key, value in values.items():
        subprocess.run(
            ["git", "config", "--global", f"credential.{url}.{key}", value],
            env=env,
            check=True,
        )


def helper(
    env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HELPER, *args], input=stdin, env=env, capture_output=True, text=True
    )


def sign_in(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A browser command makes the request interactive; discovery fails first.
    return helper(
        {**env, "BROWSER": "true"},
        "get",
        stdin="protocol=https\nhost=git.corp.example\n\n",
    )


def explain_json(env: dict[str, str], url: str) -> dict[str, dict[str, object]]:
    done = helper(env, "explain", "--json", url)
    assert done.returncode == 0, done.stderr
    rows: dict[str, dict[str, object]] = json.loads(done.stdout)
    assert rows.pop("served") is True
    return rows


def test_issuer_endpoints_come_from_discovery(
    env: dict[str, str], fake: FakeServer
) -> None:
    issuer = fake.origin
    fake.route(
        OIDC,
        Reply(
            200,
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/auth",
                "token_endpoint": f"{issuer}/token",
            },
        ),
    )
    git_config(
        env,
        "https://git.corp.example",
        oauthIssuer=issuer,
        oauthClientId="cid",
        oauthClientSecret=SECRET,
        oauthRedirectURL="http://127.0.0.1:8765/callback",
        oauthTokenURL=f"{issuer}/own-token",
    )

    rows = explain_json(env, "https://someone@git.corp.example/repo.git")

    assert rows["auth_url"] == {"value": f"{issuer}/auth", "source": "discovery"}
    assert rows["token_url"] == {"value": f"{issuer}/own-token", "source": "git config"}
    assert rows["device_auth_url"] == {"value": "", "source": "default"}
    assert rows["client_id"] == {"value": "cid", "source": "git config"}
    assert rows["client_secret"] == {"value": "[secure]", "source": "git config"}
    assert rows["redirect_url"]["value"] == "http://127.0.0.1:8765/callback"
    assert rows["username"] == {"value": "someone", "source": "request"}
    assert rows["flow"]["value"] == "auto (browser here)"


def test_text_output_shows_sources_and_never_the_secret(env: dict[str, str]) -> None:
    git_config(env, "https://github.com", oauthClientSecret=SECRET)

    done = helper(env, "explain", "https://github.com/org/repo")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "token_url: https://github.com/login/oauth/access_token  (preset)" in lines
    assert "client_secret: [secure]  (git config)" in lines
    assert "redirect_url: http://127.0.0.1:<random port>/  (default)" in lines
    assert "username: x-access-token  (preset)" in lines
    assert SECRET not in done.stdout + done.stderr


def test_unserved_url(env: dict[str, str]) -> None:
    done = helper(env, "explain", "https://unknown.example/x")
    as_json = helper(env, "explain", "--json", "https://unknown.example:8443/x")

    assert (done.returncode, as_json.returncode) == (0, 0)
    reason = "no preset, git config or file entry serves this host"
    assert done.stdout == f"https://unknown.example: not served ({reason})\n"
    assert json.loads(as_json.stdout) == {
        "served": False,
        "origin": "https://unknown.example:8443",
        "reason": reason,
    }
    assert as_json.stderr == ""


def test_settings_naming_no_server_are_explained(env: dict[str, str]) -> None:
    # A client ID set for every host serves none of them; explain says why.
    subprocess.run(
        ["git", "config", "--global", "credential.oauthClientId", "everywhere"],
        env=env,
        check=True,
    )

    done = helper(env, "explain", "https://random.example/x")
    get = subprocess.run(
        [HELPER, "get"],
        input="protocol=https\nhost=random.example\n\n",
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )

    assert done.stdout == (
        "https://random.example: not served (its settings name no server: set "
        "oauthIssuer, or oauthAuthURL and oauthTokenURL, or oauthPreset)\n"
    )
    assert (get.returncode, get.stdout, get.stderr) == (0, "", "")


def test_an_unreadable_setting_is_still_one_json_object(env: dict[str, str]) -> None:
    key = "credential.https://bad.example.oauthFlow"
    subprocess.run(["git", "config", "--global", key, "bogus"], env=env, check=True)

    done = helper(env, "explain", "--json", "https://bad.example/x")

    assert done.returncode == 1
    shown = json.loads(done.stdout)
    assert shown.keys() == {"served", "origin", "error"}
    assert (shown["served"], shown["origin"]) == (False, "https://bad.example")
    assert shown["error"].startswith("oauthFlow in git config must be one of")
    assert done.stderr == f"oauth-helper: {shown['error']}\n"


def test_a_preset_host_over_plain_http_says_so(env: dict[str, str]) -> None:
    as_json = helper(env, "explain", "--json", "http://gitlab.example.org/")
    token = helper(env, "token", "http://gitlab.example.org/")

    reason = "a token would travel unencrypted over plain http; use the https URL"
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == {
        "served": False,
        "origin": "http://gitlab.example.org",
        "reason": reason,
    }
    assert token.returncode == 1
    assert as_json.stderr == ""
    assert token.stderr == (
        f"oauth-helper: no token for http://gitlab.example.org/: {reason}\n"
    )


def test_only_get_warns_about_plain_http(env: dict[str, str]) -> None:
    # git runs store and erase on every helper after each request.
    asked = "protocol=http\nhost=gitlab.example.org\nusername=u\npassword=p\n\n"
    said = {
        action: subprocess.run(
            [HELPER, action], input=asked, capture_output=True, text=True, env=env
        ).stderr
        for action in ("store", "erase", "get")
    }

    assert (said["store"], said["erase"]) == ("", "")
    assert "travel unencrypted" in said["get"]


def test_help_documents_the_json_shape(env: dict[str, str]) -> None:
    done = helper(env, "explain", "--help")

    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert 'one JSON object whose "served" says whether anything serves' in text
    assert 'when false, "origin" is the protocol and host' in text


@pytest.mark.parametrize("command", ["explain", "get"])
def test_discovery_failure_is_one_line_naming_the_url(
    env: dict[str, str], fake: FakeServer, command: str
) -> None:
    fake.route(OIDC, Reply(404, {}))
    git_config(env, "https://git.corp.example", oauthIssuer=fake.origin)
    git_config(env, "https://git.corp.example", oauthClientId="cid")

    if command == "get":
        done = sign_in(env)
        assert (done.returncode, done.stdout) == (1, "")
    else:
        # explain still shows what it resolved: that is when people need it.
        done = helper(env, "explain", "https://git.corp.example")
        assert done.returncode == 1
        assert f"issuer: {fake.origin}  (git config)" in done.stdout.splitlines()
        assert "auth_url: (none)  (default)" in done.stdout.splitlines()
    assert done.stderr.count("\n") == 1
    assert f"{fake.origin}{OIDC}: HTTP 404" in done.stderr


@pytest.mark.parametrize("command", ["explain", "get"])
def test_issuer_mismatch_is_refused(
    env: dict[str, str], fake: FakeServer, command: str
) -> None:
    fake.route(
        OIDC,
        Reply(
            200,
            {
                "issuer": "https://evil.example",
                "authorization_endpoint": "https://evil.example/auth",
                "token_endpoint": "https://evil.example/token",
            },
        ),
    )
    git_config(env, "https://git.corp.example", oauthIssuer=fake.origin)
    git_config(env, "https://git.corp.example", oauthClientId="cid")

    if command == "get":
        done = sign_in(env)
        assert (done.returncode, done.stdout) == (1, "")
    else:
        done = helper(env, "explain", "--json", "https://git.corp.example")
        assert done.returncode == 1
        assert json.loads(done.stdout)["token_url"] == {
            "value": "",
            "source": "default",
        }
    assert done.stderr.count("\n") == 1
    assert "names issuer 'https://evil.example'" in done.stderr
    assert f"expected '{fake.origin}'" in done.stderr


def test_explain_flags_an_endpoint_that_is_not_https(env: dict[str, str]) -> None:
    git_config(
        env,
        "https://git.corp.example",
        oauthClientId="cid",
        oauthAuthURL="http://auth.corp.example/authorize",
        oauthTokenURL="https://auth.corp.example/token",
    )

    done = helper(env, "explain", "https://git.corp.example")

    # Named as the user set it, and where; the URL is theirs to look up.
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "oauth-helper: oauthAuthURL in git config must be an https URL "
        "(http only on this machine)\n"
    )


@pytest.mark.parametrize("command", ["explain", "get"])
def test_user_info_in_an_issuer_is_refused_and_never_shown(
    env: dict[str, str], command: str
) -> None:
    git_config(
        env,
        "https://git.corp.example",
        oauthClientId="cid",
        oauthIssuer="https://alice:hunter2@idp.corp.example",
    )

    if command == "get":
        done = sign_in(env)
    else:
        done = helper(env, "explain", "https://git.corp.example")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.count("\n") == 1
    assert "oauthIssuer in git config must not contain a user name" in done.stderr
    assert "hunter2" not in done.stderr and "alice" not in done.stderr


@pytest.mark.parametrize(
    "redirect", ["http://evil.example/cb", "https://127.0.0.1/cb", "ftp://127.0.0.1/"]
)
def test_a_redirect_url_off_this_machine_names_its_setting(
    env: dict[str, str], redirect: str
) -> None:
    git_config(
        env,
        "https://git.corp.example",
        oauthClientId="cid",
        oauthIssuer="https://auth.corp.example",
        oauthRedirectURL=redirect,
    )

    done = helper(env, "explain", "https://git.corp.example")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "oauth-helper: oauthRedirectURL in git config must be an http URL on "
        "this machine (http://127.0.0.1/)\n"
    )


@pytest.mark.parametrize(
    "redirect", ["http://localhost:abc/", "http://localhost:99999/cb"]
)
def test_explain_checks_the_redirect_url_as_the_sign_in_does(
    env: dict[str, str], redirect: str
) -> None:
    git_config(
        env,
        "https://git.corp.example",
        oauthClientId="cid",
        oauthAuthURL="https://auth.corp.example/authorize",
        oauthTokenURL="https://auth.corp.example/token",
        oauthRedirectURL=redirect,
    )
    # What the loopback listener of a browser sign-in says about it.
    with pytest.raises(ConfigError) as refused:
        Listener("state", redirect)

    done = helper(env, "explain", "https://git.corp.example")

    assert done.returncode == 1
    assert f"redirect_url: {redirect}  (git config)" in done.stdout.splitlines()
    assert done.stderr == f"oauth-helper: {refused.value}\n"


def test_explain_accepts_an_http_loopback_redirect_url(env: dict[str, str]) -> None:
    git_config(
        env,
        "https://git.corp.example",
        oauthClientId="cid",
        oauthTokenURL="https://auth.corp.example/token",
        oauthRedirectURL="http://[::1]:8765/callback",
    )

    rows = explain_json(env, "https://git.corp.example")

    assert rows["redirect_url"] == {
        "value": "http://[::1]:8765/callback",
        "source": "git config",
    }


def test_a_setting_with_a_control_character_is_refused_unshown(
    env: dict[str, str],
) -> None:
    git_config(env, "https://github.com", oauthClientId="cid\x1b[2J")

    done = helper(env, "explain", "https://github.com")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "oauth-helper: oauthClientId in git config holds a control character\n"
    )


def test_explain_says_what_to_set_when_no_token_endpoint_is_known(
    env: dict[str, str],
) -> None:
    done = helper(env, "explain", "https://accounts.cloud.databricks.com/")

    assert done.returncode == 1
    assert "client_id: databricks-cli  (preset)" in done.stdout.splitlines()
    assert done.stderr == (
        "oauth-helper: no token endpoint for accounts.cloud.databricks.com: set "
        "its oauthIssuer (https://accounts.cloud.databricks.com/oidc/accounts/"
        "<account ID>), or oauthAuthURL and oauthTokenURL\n"
    )
