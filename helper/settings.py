"""Resolve the provider settings for one request, from every source in order.

Highest first: request attributes, git config (``credential.<url>.oauth*``),
the user's TOML file, built-in presets. A host none of them names is not
served: no login, only what was stored for it.
"""

import os
import sys

from helper import gitconfig
from helper.errors import ConfigError
from helper.protocol import Credential
from helper.providers import FLOWS, PRESETS, Provider

__all__ = ["Settings", "config_file", "resolve"]

# git config key (as git prints it, lowercased) -> setting. The names are the
# ones git-credential-oauth documents, so users can switch helpers.
_GIT_KEYS = {
    "oauthclientid": "client_id",
    "oauthclientsecret": "client_secret",
    "oauthscopes": "scopes",
    "oauthauthurl": "auth_url",
    "oauthtokenurl": "token_url",
    "oauthdeviceauthurl": "device_auth_url",
    "oauthredirecturl": "redirect_url",
    "oauthissuer": "issuer",
    "oauthflow": "flow",
    "oauthusername": "username",
    "oauthexpirymargin": "expiry_margin",
}
_FILE_KEYS = frozenset(_GIT_KEYS.values()) | {"auth_params"}
_FALSE = frozenset({"false", "never", "no", "off", "0"})


class Settings:
    """What one request resolved to: a provider (or none) and the caller's mode."""

    def __init__(self, provider: Provider | None, interactive: bool) -> None:
        self.provider = provider
        self.interactive = interactive


def resolve(cred: Credential) -> Settings:
    """Resolve settings for *cred*; raise ConfigError on an invalid value."""
    git = gitconfig.read_urlmatch("credential", cred.url)
    provider = Provider()
    found = _apply_preset(provider, cred.host)
    found |= _apply(provider, _file_entry(cred.host), "file")
    found |= _apply(provider, _from_git(git), "git config")
    found |= _apply(provider, _from_request(cred), "request")
    if found:
        _validate(provider)
    return Settings(provider if found else None, _interactive(git))


def _apply(provider: Provider, values: dict[str, object], source: str) -> bool:
    for key, value in values.items():
        provider.set(key, value, source)
    return bool(values)


def _apply_preset(provider: Provider, host: str) -> bool:
    preset = _find_preset(host.lower())
    if preset is None:
        return False

    return _apply(provider, dict(preset), "preset")


def _find_preset(host: str) -> dict[str, object] | None:
    name = host.partition(":")[0]
    if name in PRESETS:
        return PRESETS[name]

    for pattern, preset in PRESETS.items():
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return preset
    return None


def _from_git(git: dict[str, str]) -> dict[str, object]:
    return {
        setting: _convert(setting, git[key])
        for key, setting in _GIT_KEYS.items()
        if git.get(key)
    }


def _from_request(cred: Credential) -> dict[str, object]:
    values: dict[str, object] = {}
    if cred.client_id:
        values["client_id"] = cred.client_id
    if cred.scope:
        values["scopes"] = _convert("scopes", cred.scope)
    return values


def _convert(setting: str, value: object) -> object:
    if setting == "scopes":
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        return tuple(sorted(set(map(str, items))))  # type: ignore[call-overload]
    if setting == "expiry_margin":
        return _to_seconds(value)
    return value


def _to_seconds(value: object) -> int:
    try:
        seconds = int(str(value))
    except ValueError:
        raise ConfigError(
            f"oauthExpiryMargin must be whole seconds, not {value!r}"
        ) from None
    return max(seconds, 0)


def _validate(provider: Provider) -> None:
    if provider.flow not in FLOWS:
        raise ConfigError(
            f"oauthFlow must be one of {', '.join(FLOWS)}, not {provider.flow!r}"
        )


def _interactive(git: dict[str, str]) -> bool:
    # GIT_TERMINAL_PROMPT=0 and credential.interactive=false/never are how
    # git's own callers say that nobody is there to sign in (git-config(1)).
    if os.environ.get("GIT_TERMINAL_PROMPT", "").lower() in _FALSE:
        return False

    return git.get("interactive", "").lower() not in _FALSE


def config_file() -> str:
    """Path of the user's settings file (it need not exist)."""
    if sys.platform == "win32" or sys.platform == "darwin":
        import platformdirs

        return os.path.join(platformdirs.user_config_dir("oauth-helper"), "config.toml")
    # The XDG rule is spelled out here because platformdirs costs more start-up
    # time than a cache hit; off Linux it is used as it is.
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "oauth-helper", "config.toml")


def _file_entry(host: str) -> dict[str, object]:
    path = config_file()
    if not os.path.exists(path):
        return {}

    entry = _load_file(path).get(host.lower(), {})
    unknown = set(entry) - _FILE_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown settings for {host}: {sorted(unknown)}")
    return {key: _convert(key, value) for key, value in entry.items()}


def _load_file(path: str) -> dict[str, dict[str, object]]:
    import tomllib

    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict):
        raise ConfigError(f"{path}: [hosts] must be a table of host names")
    return {str(k).lower(): v for k, v in hosts.items() if isinstance(v, dict)}
