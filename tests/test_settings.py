"""Which provider settings apply to a request, and where each came from."""

import os
import subprocess
from pathlib import Path

import pytest

from helper.errors import ConfigError
from helper.protocol import Credential
from helper.settings import is_loopback_host, resolve


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("GIT_TERMINAL_PROMPT", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# Where the test hosts' server would be: a host is served once one is named.
ISSUER = "https://idp.example"


def git_config(home: Path, key: str, value: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(home / "gitconfig")}
    subprocess.run(["git", "config", "--global", key, value], check=True, env=env)


def write_file(home: Path, text: str) -> None:
    folder = home / "config" / "oauth-helper"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(text)


def test_unknown_host_is_not_served(home: Path) -> None:
    settings = resolve(Credential(protocol="https", host="unknown.example"))

    assert settings.provider is None
    assert settings.interactive


def test_git_config_applies_per_url(home: Path) -> None:
    git_config(home, "credential.https://git.example.oauthClientId", "cid")
    git_config(home, "credential.https://git.example.oauthIssuer", ISSUER)
    git_config(home, "credential.https://git.example.oauthScopes", "write, read")

    provider = resolve(Credential(protocol="https", host="git.example")).provider
    other = resolve(Credential(protocol="https", host="other.example")).provider

    assert provider is not None and other is None
    assert provider.client_id == "cid"
    assert provider.scopes == ("read", "write")
    assert provider.sources["client_id"] == "git config"


def test_request_beats_git_config_beats_file_beats_preset(home: Path) -> None:
    write_file(
        home,
        '[hosts."gitlab.com"]\nclient_id = "from-file"\nscopes = ["api"]\n'
        'flow = "device"\n',
    )
    git_config(home, "credential.https://gitlab.com.oauthClientId", "from-git")
    cred = Credential(protocol="https", host="gitlab.com", scope="b a")

    provider = resolve(cred).provider

    assert provider is not None
    assert provider.client_id == "from-git"
    assert provider.scopes == ("a", "b")
    assert provider.flow == "device"
    assert provider.token_url == "https://gitlab.com/oauth/token"
    assert provider.sources == {
        **provider.sources,
        "client_id": "git config",
        "scopes": "request",
        "flow": "file",
        "token_url": "preset",
    }


def test_invalid_flow_is_a_config_error_naming_its_source(home: Path) -> None:
    git_config(home, "credential.https://git.example.oauthFlow", "carrier-pigeon")
    write_file(home, '[hosts."file.example"]\nflow = "smoke-signal"\n')

    with pytest.raises(ConfigError) as from_git:
        resolve(Credential(protocol="https", host="git.example"))
    with pytest.raises(ConfigError) as from_file:
        resolve(Credential(protocol="https", host="file.example"))

    assert str(from_git.value).startswith("oauthFlow in git config must be one of")
    assert "'carrier-pigeon'" in str(from_git.value)
    path = home / "config" / "oauth-helper" / "config.toml"
    assert str(from_file.value).startswith(f"flow for file.example in {path} must")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("client_id = 5", "client_id for git.example in {path} must be a string"),
        ("issuer = true", "issuer for git.example in {path} must be a string"),
        ("scopes = [1, 2]", "scopes for git.example in {path} must be a string or"),
        ("expiry_margin = true", "expiry_margin for git.example in {path} must be"),
        ("expiry_margin = 1.5", "expiry_margin for git.example in {path} must be"),
        ("expiry_margin = -100", "expiry_margin for git.example in {path} must be"),
        ("expiry_margin = 1e26", "expiry_margin for git.example in {path} must be"),
        ("redirect_ports = [true]", "redirect_ports for git.example in {path} must"),
        (
            'redirect_ports = "1-1000000000000"',
            "redirect_ports for git.example in {path} must",
        ),
        (
            'redirect_ports = "9000-8000"',
            "redirect_ports for git.example in {path} must",
        ),
        (
            'redirect_ports = "\u0663-\u0665"',
            "redirect_ports for git.example in {path} must",
        ),
        (
            'redirect_ports = "\uff11\uff12\uff13"',
            "redirect_ports for git.example in {path} must",
        ),
        ("auth_params = { a = 1 }", "auth_params for git.example in {path} must be"),
    ],
)
def test_file_values_of_the_wrong_type_are_config_errors(
    home: Path, line: str, expected: str
) -> None:
    write_file(home, f'[hosts."git.example"]\n{line}\n')
    path = home / "config" / "oauth-helper" / "config.toml"

    with pytest.raises(ConfigError) as caught:
        resolve(Credential(protocol="https", host="git.example"))

    assert str(caught.value).startswith(expected.format(path=path))


def test_file_values_of_the_right_type_are_taken(home: Path) -> None:
    write_file(
        home,
        f'[hosts."git.example"]\nclient_id = "cid"\nissuer = "{ISSUER}"\n'
        "expiry_margin = 90\n"
        'redirect_ports = [8021, "8030-8031"]\nauth_params = { prompt = "x" }\n',
    )

    provider = resolve(Credential(protocol="https", host="git.example")).provider

    assert provider is not None
    assert provider.expiry_margin == 90
    assert provider.redirect_ports == (8021, 8030, 8031)
    assert provider.auth_params == {"prompt": "x"}


@pytest.mark.parametrize(
    "key", ["oauthIssuer", "oauthTokenURL", "oauthAuthURL", "oauthAuthority"]
)
def test_a_url_setting_with_user_info_is_refused_without_echoing_it(
    home: Path, key: str
) -> None:
    url = "https://alice:hunter2@idp.example/oauth"
    git_config(home, f"credential.https://git.example.{key}", url)

    with pytest.raises(ConfigError) as caught:
        resolve(Credential(protocol="https", host="git.example"))

    assert str(caught.value).startswith(f"{key} in git config must not contain")
    assert "hunter2" not in str(caught.value)
    assert "alice" not in str(caught.value)


def test_unknown_file_key_is_a_config_error(home: Path) -> None:
    write_file(home, '[hosts."git.example"]\nclient_idd = "typo"\n')

    with pytest.raises(ConfigError, match="client_idd"):
        resolve(Credential(protocol="https", host="git.example"))


def test_broken_file_is_a_one_line_config_error(home: Path) -> None:
    write_file(home, '[hosts."git.example"\n')

    with pytest.raises(ConfigError) as caught:
        resolve(Credential(protocol="https", host="git.example"))
    assert "\n" not in str(caught.value)


def test_two_entries_for_one_host_are_a_config_error(home: Path) -> None:
    entries = ["[hosts.'git.example']", "client_id = 'a'"]
    entries += ["[hosts.'GIT.example']", "client_id = 'b'"]
    write_file(home, "\n".join(entries) + "\n")

    with pytest.raises(ConfigError, match=r"two \[hosts\] entries name git\.example"):
        resolve(Credential(protocol="https", host="git.example"))


def test_an_empty_string_in_the_file_is_no_value(home: Path) -> None:
    write_file(home, '[hosts."git.example"]\nissuer = ""\nclient_id = "c"\n')

    settings = resolve(Credential(protocol="https", host="git.example"))

    assert settings.provider is None and settings.serverless


def test_a_file_that_cannot_name_the_host_is_not_parsed(home: Path) -> None:
    # Parsing costs every git command; a broken line elsewhere is not this
    # host's business (it is reported for the hosts the file names).
    write_file(home, '[hosts."other.example"\nclient_id = \n')

    assert resolve(Credential(protocol="https", host="git.example")).provider is None
    with pytest.raises(ConfigError):
        resolve(Credential(protocol="https", host="other.example"))
    with pytest.raises(ConfigError):  # as explain reads it
        resolve(Credential(protocol="https", host="git.example"), whole_file=True)


def test_a_file_saved_as_utf16_is_reported_not_skipped(home: Path) -> None:
    folder = home / "config" / "oauth-helper"
    folder.mkdir(parents=True)
    text = f'[hosts."git.example"]\nissuer = "{ISSUER}"\nclient_id = "c"\n'
    (folder / "config.toml").write_bytes(text.encode("utf-16"))

    with pytest.raises(ConfigError, match=r"is not UTF-8 text$"):
        resolve(Credential(protocol="https", host="git.example"))


def test_a_host_spelled_with_escapes_is_still_found(home: Path) -> None:
    write_file(
        home, f'[hosts."GIT\\u002eexample"]\nissuer = "{ISSUER}"\nclient_id = "c"\n'
    )
    git_like = home / "config" / "oauth-helper" / "config.toml"
    assert "git.example" not in git_like.read_text().lower()

    provider = resolve(Credential(protocol="https", host="git.example")).provider

    assert provider is not None and provider.client_id == "c"


@pytest.mark.parametrize(
    ("env", "config", "expected"),
    [
        ({"GIT_TERMINAL_PROMPT": "0"}, None, False),
        ({}, "never", False),
        ({}, "false", False),
        ({}, "true", True),
        ({"GIT_TERMINAL_PROMPT": "1"}, None, True),
    ],
)
def test_interactive_follows_git(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    config: str | None,
    expected: bool,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if config:
        git_config(home, "credential.interactive", config)

    assert resolve(Credential(protocol="https", host="h")).interactive is expected


def test_a_file_that_is_not_utf8_is_a_one_line_config_error(home: Path) -> None:
    folder = home / "config" / "oauth-helper"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_bytes(b'\xff\xfe[hosts."git.example"]\n')

    with pytest.raises(ConfigError, match=r"is not UTF-8 text$"):
        resolve(Credential(protocol="https", host="git.example"))


def test_a_host_entry_that_is_not_a_table_is_a_config_error(home: Path) -> None:
    write_file(home, '[hosts]\n"git.example" = 5\n')

    with pytest.raises(ConfigError, match=r"hosts\.'git\.example' must be a table"):
        resolve(Credential(protocol="https", host="git.example"))


@pytest.mark.parametrize("margin", ["-5", "²", "١٢٠"])
def test_margin_out_of_range_in_git_config_is_refused(home: Path, margin: str) -> None:
    git_config(home, "credential.https://git.example.oauthClientId", "cid")
    git_config(home, "credential.https://git.example.oauthExpiryMargin", margin)

    with pytest.raises(ConfigError, match=f"from 0 to 86400, not '{margin}'"):
        resolve(Credential(protocol="https", host="git.example"))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3:80", True),
        ("LOCALHOST:80", True),
        ("127.².0.1", False),
        ("x.localhost", False),
    ],
)
def test_loopback_names_are_ascii_digits(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("protocol", "warned"),
    [("ftp", True), ("FTP", True), ("ftps", False), ("smtp", False), ("imap", False)],
)
def test_no_sign_in_for_protocols_other_than_https(
    home: Path, protocol: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # A file entry names a host, not a protocol: it matches every one.
    write_file(home, f'[hosts."git.example"]\nissuer = "{ISSUER}"\nclient_id = "c"\n')

    assert resolve(Credential(protocol="https", host="git.example")).provider
    assert resolve(Credential(protocol=protocol, host="git.example")).provider is None
    assert ("travel unencrypted" in caplog.text) is warned


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("git.example", False),
        ("git.example:8080", False),
        ("127.0.0.1:8080", True),
        ("localhost", True),
        ("[::1]:8080", True),
        ("127.0.0.1.git.example", False),
    ],
)
def test_plain_http_is_served_on_loopback_only(
    home: Path, host: str, served: bool, caplog: pytest.LogCaptureFixture
) -> None:
    git_config(home, f"credential.http://{host}.oauthClientId", "cid")
    git_config(home, f"credential.http://{host}.oauthIssuer", ISSUER)

    for protocol in ("http", "HTTP"):
        settings = resolve(Credential(protocol=protocol, host=host))

        assert (settings.provider is not None) == served
    assert caplog.text.count("travel unencrypted") == (0 if served else 2)


def test_git_config_for_one_user_applies_to_that_user(home: Path) -> None:
    git_config(home, "credential.https://bob@git.example.oauthClientId", "bobs")
    git_config(home, "credential.https://git.example.oauthClientId", "anyone")
    git_config(home, "credential.https://git.example.oauthIssuer", ISSUER)

    def client_id(username: str) -> str:
        cred = Credential(protocol="https", host="git.example", username=username)
        provider = resolve(cred).provider
        assert provider is not None
        return provider.client_id

    assert (client_id("bob"), client_id("alice"), client_id("")) == (
        "bobs",
        "anyone",
        "anyone",
    )


def test_a_path_with_a_stray_percent_still_finds_its_settings(home: Path) -> None:
    git_config(home, "credential.https://git.example.oauthClientId", "cid")
    git_config(home, "credential.https://git.example.oauthIssuer", ISSUER)

    cred = Credential(protocol="https", host="git.example", path="x%zz y/ü.git")
    provider = resolve(cred).provider

    assert provider is not None and provider.client_id == "cid"
    assert cred.url == "https://git.example/x%25zz%20y/%C3%BC.git"


@pytest.mark.parametrize("username", ["bob@corp.example", "a:b", "x/y", "ü"])
def test_any_user_name_keeps_the_host_served(home: Path, username: str) -> None:
    # git itself applies credential.https://HOST.* whatever the user name.
    git_config(home, "credential.https://git.example.oauthClientId", "cid")
    git_config(home, "credential.https://git.example.oauthIssuer", ISSUER)

    cred = Credential(protocol="https", host="git.example", username=username)
    provider = resolve(cred).provider

    assert provider is not None and provider.client_id == "cid"


def test_a_key_for_every_host_serves_none_of_them(home: Path) -> None:
    # credential.oauthClientId applies to every URL; no host becomes served
    # by it, so unrelated remotes still get no output and no error.
    git_config(home, "credential.oauthClientId", "everywhere")
    git_config(home, "credential.https://git.example.oauthIssuer", ISSUER)

    unrelated = resolve(Credential(protocol="https", host="random.example"))
    named = resolve(Credential(protocol="https", host="git.example")).provider

    assert (unrelated.provider, unrelated.serverless) == (None, True)
    assert named is not None and named.client_id == "everywhere"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("oauthIssuer", "http://login.example"),
        ("oauthIssuer", "login.example"),
        ("oauthAuthority", "http://login.microsoftonline.com/x"),
        ("oauthTokenURL", "https:///token"),
        ("oauthDiscoveryURL", "ftp://127.0.0.1/meta"),
    ],
)
def test_an_endpoint_that_is_not_https_names_its_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str, value: str
) -> None:
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[credential "https://git.example"]\n\t{key} = {value}\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")

    with pytest.raises(ConfigError) as refused:
        resolve(Credential(protocol="https", host="git.example"))

    assert str(refused.value) == (
        f"{key} in git config must be an https URL (http only on this machine)"
    )


def test_an_endpoint_with_an_escape_sequence_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "config" / "oauth-helper"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(
        '[hosts."git.example"]\nauth_url = "https://id.example/a\\u001b[31m"\n'
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")

    with pytest.raises(
        ConfigError, match=r"auth_url for git\.example in .* holds a control"
    ):
        resolve(Credential(protocol="https", host="git.example"))


@pytest.mark.parametrize(
    ("entry", "refusal"),
    [
        ('username = "a\\rb"', "username for git.example in {path} holds a control"),
        ('client_id = "a\\rb"', "client_id for git.example in {path} holds a control"),
        ('scopes = ["read\\rx"]', "scopes for git.example in {path} holds a control"),
    ],
)
def test_a_file_value_with_a_control_character_is_refused_before_any_sign_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, entry: str, refusal: str
) -> None:
    folder = tmp_path / "config" / "oauth-helper"
    folder.mkdir(parents=True)
    path = folder / "config.toml"
    path.write_text(f'[hosts."git.example"]\nissuer = "https://id.example"\n{entry}\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")

    with pytest.raises(ConfigError) as refused:
        resolve(Credential(protocol="https", host="git.example"))

    assert str(refused.value) == refusal.format(path=path) + " character"


def test_a_git_config_value_with_a_line_break_stays_one_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Read line by line, "a\noauthissuer https://evil" would set a second key.
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(
        '[credential "https://git.example"]\n'
        "\toauthIssuer = https://id.example\n"
        '\toauthUsername = "a\\noauthclientid evil"\n'
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")

    with pytest.raises(ConfigError) as refused:
        resolve(Credential(protocol="https", host="git.example"))

    assert str(refused.value) == "oauthUsername in git config holds a control character"
