"""Resolve the provider settings for one request, from every source in order.

Highest first: request attributes, git config (``credential.<url>.oauth*``),
the user's TOML file, a built-in preset (chosen by config, by host, or guessed
from the host name or the server's ``WWW-Authenticate`` realm). A host none of
them names is not served: no login, only what was stored for it.
"""

import os
import sys

from helper import gitconfig, logs
from helper.errors import ConfigError
from helper.paths import xdg_home
from helper.protocol import Credential
from helper.providers import FLOWS, HOSTS, NAME_HINTS, PRESETS, REALMS, Provider

__all__ = ["URL_SETTINGS", "Settings", "config_file", "is_loopback_host", "resolve"]

# Setting -> git config key. The names are the ones git-credential-oauth
# documents, so users can switch helpers; git prints them lowercased.
_GIT_NAMES = {
    "client_id": "oauthClientId",
    "client_secret": "oauthClientSecret",
    "scopes": "oauthScopes",
    "auth_url": "oauthAuthURL",
    "token_url": "oauthTokenURL",
    "device_auth_url": "oauthDeviceAuthURL",
    "redirect_url": "oauthRedirectURL",
    "issuer": "oauthIssuer",
    "flow": "oauthFlow",
    "username": "oauthUsername",
    "expiry_margin": "oauthExpiryMargin",
    "preset": "oauthPreset",
    "authority": "oauthAuthority",
    "discovery_url": "oauthDiscoveryURL",
    "redirect_ports": "oauthRedirectPorts",
    "auth_params": "oauthAuthParams",
}
_GIT_KEYS = {name.lower(): setting for setting, name in _GIT_NAMES.items()}
_FILE_KEYS = frozenset(_GIT_NAMES)
# Settings that hold a URL: none may carry a user name or password, which
# would then travel in requests, logs and error messages.
URL_SETTINGS = frozenset(
    {
        "auth_url",
        "token_url",
        "device_auth_url",
        "redirect_url",
        "issuer",
        "authority",
        "discovery_url",
    }
)

# Microsoft Entra ID's login host, and what a tenant (a GUID or a domain name)
# is spelled with.
_ENTRA = "https://login.microsoftonline.com/"
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

# Endpoint settings that may be a path on the remote's host ("/oauth/token").
_RELATIVE_OK = ("auth_url", "token_url", "device_auth_url")

# Settings that say which server a host uses: with any of them set by the user,
# the host's name or realm is not used to guess a preset.
_SERVER_KEYS = frozenset(
    {"preset", "issuer", "auth_url", "token_url", "authority", "discovery_url"}
)
_FALSE = frozenset({"false", "never", "no", "off", "0"})
_TRUE = frozenset({"true", "yes", "on", "1"})
# Whole seconds; a day is far beyond any token's useful margin.
_MAX_MARGIN = 86400

log = logs.get(__name__)


class Settings:
    """What one request resolved to: a provider (or none) and the caller's mode.

    ``serverless`` is True when settings apply to the host but none says where
    its server is (a client ID alone, perhaps set for every host): not served.
    ``insecure`` is True when settings serve the host but its protocol would
    carry the token unencrypted (or is not https at all): not served either.
    """

    def __init__(
        self,
        provider: Provider | None,
        interactive: bool,
        serverless: bool = False,
        insecure: bool = False,
    ) -> None:
        self.provider = provider
        self.interactive = interactive
        self.serverless = serverless
        self.insecure = insecure


def resolve(
    cred: Credential,
    warn: bool = True,
    whole_file: bool = False,
    like_git: bool = False,
) -> Settings:
    """Resolve settings for *cred*; raise ConfigError on an invalid value.

    *like_git* makes *cred* what git would send for its URL: without an
    http(s) path unless credential.useHttpPath applies (``token URL``).

    *warn* says on stderr why a host is not served after all (a plain http
    URL); only a caller that would sign in wants that line. *whole_file*
    reads the settings file even when it cannot name the host (explain).
    """
    git = gitconfig.read_urlmatch("credential", cred.url)
    if like_git and cred.path and not _keeps_path(cred.protocol, git):
        cred.path = ""
    from_file = _file_entry(cred.host, whole_file)
    from_git = _from_git(git)
    provider = Provider()
    preset = _apply_preset(provider, cred, from_file, from_git)
    given = _apply(provider, from_file, "file") | _apply(
        provider, from_git, "git config"
    )
    # A key set for every host (credential.oauthClientId) must not make each
    # one served: only a preset or a named server does.
    found = preset or bool(_SERVER_KEYS & (from_file.keys() | from_git.keys()))
    if given and not found:
        return Settings(None, _interactive(git), serverless=True)
    if found and not _signs_in_over(cred, warn):
        return Settings(None, _interactive(git), insecure=True)
    if not found:
        # client_id and scope in a request select a key; they do not make a
        # host served (nothing says where its server is).
        return Settings(None, _interactive(git))

    _apply(provider, _from_request(cred), "request")
    _resolve_relative_endpoints(provider, cred)
    _prefer_device_without_secret(provider)
    return Settings(provider, _interactive(git))


def _keeps_path(protocol: str, git: dict[str, str]) -> bool:
    # As git itself reads a URL: an http(s) path is part of the credential
    # only with credential.useHttpPath (a key without a value means true).
    # So a token for https://host/repo.git is the host's token, however a
    # caller names it, unless the user chose otherwise.
    if protocol.lower() not in ("http", "https"):
        return True
    value = git.get("usehttppath")
    return value is not None and (value == "" or value.lower() in _TRUE)


def _signs_in_over(cred: Credential, warn: bool) -> bool:
    """Whether a token may be obtained for *cred*'s protocol (*warn*: say why not).

    Only https keeps a token unreadable on the way (plain http only to this
    machine). git asks for ftp, smtp and imap credentials too. What git
    itself stored for such a host is still served.
    """
    protocol = cred.protocol.lower()
    if protocol == "https" or (protocol == "http" and is_loopback_host(cred.host)):
        return True
    if warn and protocol in ("http", "ftp"):
        log.warning(
            "not signing in for %s://%s: a token would travel unencrypted; "
            "use its https URL",
            protocol,
            cred.host,
        )
    else:
        # smtp, imap and the like are another program's business: stay quiet.
        log.debug("no sign-in for protocol %r", protocol)
    return False


def is_loopback_host(host: str) -> bool:
    """Whether a request's host (port allowed) names this machine."""
    # By name, without ipaddress (a cost on every git command): 127.0.0.0/8,
    # [::1] and localhost (RFC 6761 §6.3), any port.
    if host.startswith("["):
        name = host.partition("]")[0] + "]"
    else:
        name = host.partition(":")[0].lower()
    # Not *.localhost: glibc sends such a name to DNS, off this machine.
    if name in ("localhost", "[::1]"):
        return True
    octets = name.split(".")
    return len(octets) == 4 and octets[0] == "127" and all(map(_is_number, octets))


def _is_number(text: str) -> bool:
    # isdigit() alone accepts digits int() refuses, such as "²".
    return text.isascii() and text.isdigit()


def _apply(provider: Provider, values: dict[str, object], source: str) -> bool:
    for key, value in values.items():
        provider.set(key, value, source)
    return bool(values)


def _apply_preset(
    provider: Provider,
    cred: Credential,
    from_file: dict[str, object],
    from_git: dict[str, object],
) -> bool:
    host = cred.host.lower()
    chosen = _choose_preset(host, cred.wwwauth, from_file, from_git)
    if chosen is None:
        return False

    name, at, source = chosen
    for key, value in PRESETS[name].items():
        if isinstance(value, str):
            value = value.replace("{host}", at or host)
        elif isinstance(value, dict):
            value = dict(value)
        provider.set(key, value, "preset")
    provider.set("preset", name, source)
    tenant = _entra_tenant(cred.wwwauth) if provider.tenant_from_challenge else ""
    if tenant:
        provider.set("authority", f"{_ENTRA}{tenant}", "wwwauth")
    return True


def _entra_tenant(wwwauth: list[str]) -> str:
    """The tenant a ``Bearer authorization_uri=`` challenge names, or "".

    Only a tenant under Microsoft's own login host is taken, spelled as a
    GUID or a domain name (labels of letters, digits and hyphens): the
    remote must not be able to send the sign-in elsewhere, nor to a path
    that is no tenant ("..").
    """
    from urllib.request import parse_http_list

    for header in wwwauth:
        scheme, _, params = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            continue
        # RFC 9110 §11.2: auth-params, quoted strings may hold commas.
        for param in parse_http_list(params):
            name, _, value = param.partition("=")
            uri = value.strip()
            if len(uri) > 1 and uri[0] == uri[-1] == '"':
                uri = uri[1:-1]
            if name.strip().lower() == "authorization_uri" and uri.startswith(_ENTRA):
                tenant = uri[len(_ENTRA) :].removesuffix("/")
                if _is_tenant(tenant):
                    return tenant
    return ""


def _is_tenant(name: str) -> bool:
    labels = name.lower().split(".")
    return len(name) <= 253 and all(
        label
        and len(label) <= 63
        and all(c in _TENANT_CHARS for c in label)
        and label[0] != "-"
        and label[-1] != "-"
        for label in labels
    )


def _choose_preset(
    host: str,
    wwwauth: list[str],
    from_file: dict[str, object],
    from_git: dict[str, object],
) -> tuple[str, str, str] | None:
    """(preset, host its endpoints live on, why it was chosen), or None."""
    for values, source in ((from_git, "git config"), (from_file, "file")):
        if values.get("preset"):
            return str(values["preset"]), "", source

    name = host.partition(":")[0] if host[:1] != "[" else host
    known = _find_host(name)
    if known is not None:
        return known[0], known[1], "preset"
    if _SERVER_KEYS & (from_git.keys() | from_file.keys()):
        return None

    # Self-hosted forges: only a guess, so only where nothing names the server.
    hint = NAME_HINTS.get(name.partition(".")[0])
    if hint is not None:
        return hint, "", "host name"
    realm = _realm_preset(wwwauth)
    return (realm, "", "wwwauth realm") if realm else None


def _find_host(name: str) -> tuple[str, str] | None:
    if name in HOSTS:
        return HOSTS[name]

    for pattern, entry in HOSTS.items():
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return entry
    return None


def _realm_preset(wwwauth: list[str]) -> str:
    # RFC 7617 §2: Basic realm="GitLab"; compared case-insensitively.
    for header in wwwauth:
        rest = header.lower().partition("realm=")[2].lstrip('" ')
        realm = rest.partition('"')[0].partition(",")[0].strip()
        if realm in REALMS:
            return REALMS[realm]
    return ""


def _resolve_relative_endpoints(provider: Provider, cred: Credential) -> None:
    # git-credential-oauth takes oauthAuthURL=/oauth/authorize as a path on
    # the remote's own host; a configuration written for it means the same
    # here. Only a single leading "/": "//host/..." names another host.
    for key in _RELATIVE_OK:
        value = getattr(provider, key)
        if value.startswith("/") and not value.startswith("//"):
            absolute = f"{cred.protocol.lower()}://{cred.host}{value}"
            provider.set(key, absolute, provider.sources.get(key, "preset"))


def _from_git(git: dict[str, str]) -> dict[str, object]:
    return {
        setting: _convert(setting, git[key], f"{_GIT_NAMES[setting]} in git config")
        for key, setting in _GIT_KEYS.items()
        if git.get(key)
    }


def _from_request(cred: Credential) -> dict[str, object]:
    values: dict[str, object] = {}
    if cred.client_id:
        values["client_id"] = cred.client_id
    if cred.scope:
        values["scopes"] = _convert("scopes", cred.scope, "scope in the request")
    return values


def _convert(setting: str, value: object, where: str) -> object:
    """*value* as *setting* holds it; *where* names it in an error message."""
    if setting == "scopes":
        return _to_scopes(value, where)
    if setting == "expiry_margin":
        return _to_seconds(value, where)
    if setting == "redirect_ports":
        return _to_ports(value, where)
    if setting == "auth_params":
        return _to_params(value, where)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {type(value).__name__}")
    if not value.isprintable():
        # It would be sent, shown or stored, and could never be written back
        # as one line: refused before any sign-in starts.
        raise ConfigError(f"{where} holds a control character")
    if setting == "preset" and value not in PRESETS:
        raise ConfigError(f"{where} must be one of {', '.join(PRESETS)}, not {value!r}")
    if setting == "flow" and value not in FLOWS:
        raise ConfigError(f"{where} must be one of {', '.join(FLOWS)}, not {value!r}")
    if setting in URL_SETTINGS:
        _check_url(setting, value, where)
    return value


def _check_url(setting: str, value: str, where: str) -> None:
    # Said here, naming where the value was set; the flows check again what
    # discovery adds. The URL is not repeated: the user wrote it, and the
    # part refused may be a password.
    host = _authority(value)
    if "@" in host:
        raise ConfigError(
            f"{where} must not contain a user name or password; remove the "
            "part before '@' (a client secret goes in oauthClientSecret)"
        )
    if setting in _RELATIVE_OK and value[:1] == "/" and value[:2] != "//":
        return
    scheme, sep, _ = value.partition("://")
    scheme, host = scheme.lower(), host if sep else ""
    if setting == "redirect_url":
        if scheme != "http" or not is_loopback_host(host):
            raise ConfigError(
                f"{where} must be an http URL on this machine (http://127.0.0.1/)"
            )
    elif not (scheme == "https" and host) and not (
        scheme == "http" and is_loopback_host(host)
    ):
        raise ConfigError(f"{where} must be an https URL (http only on this machine)")


def _authority(url: str) -> str:
    # What follows "//" up to the first "/", "?" or "#" (RFC 3986 §3.2), by
    # hand: urllib.parse would add re, enum and ipaddress to every git
    # command, more start-up time than a whole cache hit.
    rest = url.partition("//")[2]
    for end in "/?#":
        rest = rest.partition(end)[0]
    return rest


def _to_scopes(value: object, where: str) -> tuple[str, ...]:
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where} must be a string or a list of strings")
    if not all(item.isprintable() for item in items):
        raise ConfigError(f"{where} holds a control character")
    return tuple(sorted(set(items)))


def _to_seconds(value: object, where: str) -> int:
    # bool is an int to Python, and never what anyone meant by a margin.
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and _is_number(value.strip()):
        seconds = int(value)
    if seconds is None or not 0 <= seconds <= _MAX_MARGIN:
        raise ConfigError(
            f"{where} must be whole seconds from 0 to {_MAX_MARGIN}, not {value!r}"
        )
    return seconds


def _to_ports(value: object, where: str) -> tuple[int, ...]:
    # "8021-8040", "8021,8022" or a TOML list of numbers.
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    ports: list[int] = []
    try:
        for item in items:  # type: ignore[attr-defined]
            if isinstance(item, bool):
                raise TypeError(item)
            first, _, last = str(item).strip().partition("-")
            if not (_is_number(first) and _is_number(last or first)):
                raise ValueError(item)
            low, high = int(first), int(last or first)
            # Checked before the range is built: 1-1000000000000 is no list.
            if not 0 < low <= high < 65536:
                raise ValueError(item)
            ports += range(low, high + 1)
    except (TypeError, ValueError):
        ports = [0]
    if not ports or not all(0 < port < 65536 for port in ports):
        raise ConfigError(
            f"{where} must be ports or ranges like 8021-8040, not {value!r}"
        )
    return tuple(ports)


def _to_params(value: object, where: str) -> dict[str, str]:
    # git config: a query string ("prompt=consent&hd=example.com"); file: a table.
    if isinstance(value, str):
        import urllib.parse

        return dict(urllib.parse.parse_qsl(value, keep_blank_values=True))
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    raise ConfigError(f"{where} must be a table of strings")


def _prefer_device_without_secret(provider: Provider) -> None:
    # A provider that refuses browser-flow codes without a client secret
    # (GitHub OAuth apps) still serves the device flow to a public client.
    if (
        provider.secret_required
        and not provider.client_secret
        and provider.flow == "auto"
        and provider.device_auth_url
    ):
        provider.set("flow", "device", "preset")


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
    return os.path.join(
        xdg_home("XDG_CONFIG_HOME", ".config"), "oauth-helper", "config.toml"
    )


def _file_entry(host: str, whole_file: bool = False) -> dict[str, object]:
    path = config_file()
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    # tomllib loads re, which costs more start-up time than a cache hit: a
    # file that cannot name this host (no escape could spell it) is skipped.
    # One with NUL bytes (UTF-16, as some editors save) is read, to say so.
    name = host.lower().encode("utf-8", "surrogateescape")
    spelled = name in raw.lower() or b"\\" in raw or b"\0" in raw
    if not spelled and not whole_file:
        return {}

    entry = _load_file(path, raw).get(host.lower(), {})
    unknown = set(entry) - _FILE_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown settings for {host}: {sorted(unknown)}")
    # An empty string is no value, as an empty git config value is not:
    # issuer = "" must not make a host served with nowhere to sign in.
    return {
        key: _convert(key, value, f"{key} for {host} in {path}")
        for key, value in entry.items()
        if value != ""
    }


def _load_file(path: str, raw: bytes) -> dict[str, dict[str, object]]:
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {path}: it is not UTF-8 text") from None
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict):
        raise ConfigError(f"{path}: [hosts] must be a table of host names")
    for name, entry in hosts.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: hosts.{name!r} must be a table of settings")
    lowered: dict[str, dict[str, object]] = {}
    for name, entry in hosts.items():
        key = str(name).lower()
        if key in lowered:  # host names ignore case: one would hide the other
            raise ConfigError(f"{path}: two [hosts] entries name {key}")
        lowered[key] = entry
    return lowered
