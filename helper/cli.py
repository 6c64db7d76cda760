"""Commands for people and scripts: ``token``, ``status``, ``logout``, ``explain``.

With :mod:`helper.entry`, the only module that prints or picks an exit code:
0 success, 1 an operational failure, 2 a usage error (click's convention).
"""

import datetime
import errno
import json
import os
import sys
import unicodedata
from urllib.parse import unquote, urlsplit

import click

from helper import actions, logs, settings
from helper.entry import silence_stdout, write_stdout
from helper.errors import HelperError, one_line
from helper.protocol import Credential, breaks_a_line
from helper.providers import Provider
from helper.redact import MASK, SECRET_KEYS
from helper.store import Record, Store

__all__ = ["run"]

_SHOWN = (
    "name",
    "preset",
    "client_id",
    "client_secret",
    "scopes",
    "issuer",
    "discovery_url",
    "authority",
    "auth_url",
    "token_url",
    "device_auth_url",
    "redirect_url",
    "redirect_ports",
    "flow",
    "username",
    "login_hint",
    "auth_params",
    "expiry_margin",
)
# The names the program is installed under.
_NAMES = ("oauth-helper", "git-credential-oauth-helper")
# errno values of a stdout that cannot take the output (full disk, gone).
_OUTPUT_ERRORS = frozenset({errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EBADF})
_ENDPOINTS = {
    "auth_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "device_auth_url": "device_authorization_endpoint",
}


def run(args: list[str]) -> int:
    """Run a click command; turn our errors into one line and exit 1."""
    words = [arg for arg in args if not arg.startswith("-")]
    # logout writes to stderr only; token says it in its own words.
    if sys.stdout is None and words[:1] not in (["logout"], ["token"]):
        click.echo("oauth-helper: cannot write the output: stdout is closed", err=True)
        return 1
    try:
        cli.main(args=args, prog_name=_program_name(), standalone_mode=False)
        # A full disk shows at the flush: say so here, not at exit.
        if sys.stdout is not None:
            sys.stdout.flush()
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:
        click.echo(f"oauth-helper: {_usage_line(exc)}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("oauth-helper: aborted", err=True)
        return 1
    except HelperError as exc:
        click.echo(f"oauth-helper: {one_line(str(exc))}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except (BrokenPipeError, SystemExit):
        # Whoever read stdout has gone away. click answers EPIPE itself with
        # sys.exit(1), its only SystemExit when not in standalone mode.
        silence_stdout()
        click.echo("oauth-helper: cannot write the output: Broken pipe", err=True)
        return 1
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRORS:
            return _internal_error(exc)
        silence_stdout()
        click.echo(f"oauth-helper: cannot write the output: {exc.strerror}", err=True)
        return 1
    except Exception as exc:  # never a traceback, see below
        return _internal_error(exc)
    return 0


def _internal_error(exc: Exception) -> int:
    # An exception nobody foresaw may carry request data in its message: only
    # its type is shown, the traceback only with debug output on.
    if logs.debug_enabled():
        import traceback

        traceback.print_exception(exc)
        click.echo(f"oauth-helper: internal error ({type(exc).__name__})", err=True)
        return 1
    click.echo(
        f"oauth-helper: internal error ({type(exc).__name__}); "
        "run with --debug for details",
        err=True,
    )
    return 1


def _program_name() -> str:
    # Help shows the name it was run by; any other name (python -m) is ours.
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    return name if name in _NAMES else "oauth-helper"


def _usage_line(exc: click.UsageError) -> str:
    # One line like every other error (click would add the usage and a blank
    # line): what was wrong, and where the help is.
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
    return one_line(exc.format_message()) + hint


def _version() -> str:
    from importlib.metadata import version

    return version("oauth-helper")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="oauth-helper")
@click.option("--debug", is_flag=True, help="Log every step to stderr (never secrets).")
def cli(debug: bool) -> None:
    """A git credential helper that obtains, caches and refreshes OAuth tokens.

    git runs it as `oauth-helper get|store|erase` (set credential.helper =
    oauth-helper); the commands below are for people and scripts.
    """
    if debug:
        logs.enable_debug()
    logs.use_stderr()
    logs.configure()


def _request(url: str) -> tuple[Credential, str]:
    """The request git would send for *url*, and *url* as a message may show it.

    A usage error if *url* is not one. Shown is scheme://host[:port]/path: the
    user info may hold a password and the query or fragment a token.
    """
    _refuse_control(url)
    try:
        parts = urlsplit(url)
        host = _host(parts.hostname or "", parts.port)
    except ValueError:  # an unclosed "[", or a port outside 0-65535
        raise _not_a_url() from None
    if parts.scheme not in ("https", "http") or not host:
        raise _not_a_url()

    # As git reads a URL: the user name percent-decoded (alice%40corp).
    username = unquote(parts.username or "", errors="surrogateescape")
    # The path as git sends it (decoded, no leading slash); token keeps it
    # only where credential.useHttpPath says so, as git would.
    path = unquote(parts.path.lstrip("/"), errors="surrogateescape")
    cred = Credential(protocol=parts.scheme, host=host, username=username, path=path)
    return cred, f"{parts.scheme}://{host}{parts.path}"


def _not_a_url() -> click.BadParameter:
    # The URL is not echoed: a mistyped one may carry a password.
    return click.BadParameter(
        "expected an http(s) URL such as https://host/path", param_hint="URL"
    )


def _refuse_control(url: str) -> None:
    # Before urlsplit, which silently drops tab, CR and LF (Python's fix for
    # bpo-43882): such a URL is a paste accident, never what git would send.
    if any(unicodedata.category(ch) == "Cc" for ch in url):
        raise click.BadParameter(
            "the URL contains a control character (a line break, tab, NUL, ...)",
            param_hint="URL",
        )


def _host(hostname: str, port: int | None) -> str:
    # git writes an IPv6 literal with its brackets, and so do our records.
    if not hostname:
        return ""
    name = f"[{hostname}]" if ":" in hostname else hostname
    return name + (f":{port}" if port else "")


@cli.command()
@click.argument("url")
def token(url: str) -> None:
    """Print a valid access token for URL (signing in if needed)."""
    cred, shown = _request(url)
    if sys.stdout is None:  # said before a sign-in whose token would be lost
        raise HelperError("cannot write the token: stdout is closed")
    # The whole settings file, as explain reads it: a script author should
    # hear of a broken file rather than "not served".
    resolved = settings.resolve(cred, warn=False, whole_file=True, like_git=True)
    if resolved.provider is not None and not resolved.provider.client_id:
        # The error below says how to set one up: get need not say it too.
        resolved.interactive = False
    pairs = dict(actions.get(cred, resolved, Store()))
    secret = pairs.get("password") or pairs.get("credential")
    if not secret:
        raise HelperError(f"no token for {shown}: {_why_no_token(cred, resolved)}")
    if breaks_a_line(secret):
        raise HelperError(
            "the provider returned a token with a line break; refusing it"
        )
    try:
        write_stdout(secret + "\n")
    except OSError as exc:
        raise HelperError(f"cannot write the token: {exc.strerror or exc}") from None


def _why_no_token(cred: Credential, resolved: settings.Settings) -> str:
    # The same checks, in the same order, as actions.get: a sign-in that
    # failed raised its own error before this point.
    provider = resolved.provider
    if provider is None:
        return _unserved_reason(resolved, cred.protocol)
    if not provider.client_id:
        return actions.missing_client_advice(cred, provider)
    fresh = "no fresh token is stored"
    if not resolved.interactive:
        why = "GIT_TERMINAL_PROMPT=0 or credential.interactive=false"
        return f"{fresh}, and sign-in is off ({why})"
    if not actions.someone_is_there():
        return f"{fresh}, and nobody is there to sign in (no browser, no terminal)"
    return "the sign-in gave no token; run with --debug for details"


def _describe(record: Record) -> dict[str, object]:
    return {
        "host": f"{record.protocol}://{record.host}/{record.path}".rstrip("/"),
        "username": record.username,
        "client_id": record.client_id,
        "scopes": record.scope,
        "expires": _utc(record),
        # Whether a token is held at all: a record whose refresh was refused
        # stays, without secrets, to recognise git's late echoes of it.
        "access_token": bool(record.current or record.password or record.credential),
        "refresh_token": record.refreshable == "1",
        "store": record.kind,
        "origin": record.origin,
    }


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """List stored credentials (never a secret)."""
    # Hashed file names come back in no useful order: sort for people.
    rows = sorted(
        (_describe(r) for r in Store().all_records()),
        key=lambda row: (str(row["host"]), str(row["username"])),
    )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("nothing stored")
    for row in rows:
        click.echo(_status_line(row))


def _status_line(row: dict[str, object]) -> str:
    # Empty fields are left out; a stored username may hold an ESC.
    kept = {key: value for key, value in row.items() if value not in ("", None)}
    return one_line(" ".join(f"{key}={value}" for key, value in kept.items()))


def _utc(record: Record) -> str | None:
    # ISO 8601 in UTC, as password_expiry_utc is; None when it never expires.
    # A stored value may be any whole number git was given, even one past
    # any calendar: "invalid", never a crash or a raw 30-digit number.
    try:
        expiry = record.expiry()
        if expiry is None:
            return None
        moment = datetime.datetime.fromtimestamp(expiry, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return "invalid"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@cli.command()
@click.argument("url", required=False)
def logout(url: str | None) -> None:
    """Remove stored credentials for URL's protocol and host, or all of them."""
    st = Store()
    # Only a missing argument means everything: an empty one is a mistake.
    wanted = None if url is None else _request(url)[0]
    removed = 0
    for record in list(st.all_records()):
        if wanted is None or _same_origin(record, wanted):
            removed += st.remove(record)
    # Records set aside as damaged may still hold a token: they go too.
    if wanted is None:
        removed += st.discard_damaged()
    elif not wanted.username:
        removed += st.discard_damaged(wanted.protocol, wanted.host)
    click.echo(f"removed {removed} stored credential(s)", err=True)


def _same_origin(record: Record, wanted: Credential) -> bool:
    if wanted.username and record.username != wanted.username:
        return False
    return (record.protocol, record.host.lower()) == (
        wanted.protocol,
        wanted.host.lower(),
    )


@cli.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def explain(url: str, as_json: bool) -> None:
    """Show the settings that apply to URL and where each came from.

    With --json, one JSON object whose "served" says whether anything serves
    URL's host. When true, every other key is a setting, as {"value": ...,
    "source": ...}; when false, "origin" is the protocol and host looked up,
    with "reason", or "error" for a setting that cannot be read. Problems
    found (discovery, an endpoint a sign-in would refuse, an unreadable
    setting) are also reported on stderr, with exit status 1.
    """
    cred, _ = _request(url)
    origin = f"{cred.protocol}://{cred.host}"
    try:
        # The whole settings file: a mistake elsewhere in it is worth seeing.
        resolved = settings.resolve(cred, warn=False, whole_file=True)
    except HelperError as exc:
        if as_json:  # still one JSON object, as scripts parse it
            error = one_line(str(exc))
            shown = {"served": False, "origin": origin, "error": error}
            click.echo(json.dumps(shown, indent=2))
        raise
    provider = resolved.provider
    if provider is None:
        _unserved(origin, _unserved_reason(resolved, cred.protocol), as_json)
        return
    # Settings are shown even when they are broken: that is when people look.
    found = _discover(provider)
    if not found and not provider.token_url and not provider.authority:
        from helper.login import no_token_endpoint

        found.append(no_token_endpoint(provider, cred.host))
    problems = list(dict.fromkeys(found + _url_problems(provider)))
    rows = {key: _row(provider, cred, key) for key in _SHOWN}
    if as_json:
        click.echo(json.dumps({"served": True, **rows}, indent=2))
    else:
        for key, row in rows.items():
            value = row["value"] if row["value"] != "" else "(none)"
            click.echo(one_line(f"{key}: {value}  ({row['source']})"))
    if problems:
        raise HelperError("; ".join(problems))


def _unserved_reason(resolved: settings.Settings, protocol: str) -> str:
    if resolved.insecure and protocol.lower() in ("http", "ftp"):
        return (
            f"a token would travel unencrypted over plain {protocol.lower()}; "
            "use the https URL"
        )
    if resolved.insecure:
        return "oauth-helper signs in for https URLs only"
    if resolved.serverless:
        return (
            "its settings name no server: set oauthIssuer, or oauthAuthURL and "
            "oauthTokenURL, or oauthPreset"
        )
    return "no preset, git config or file entry serves this host"


def _unserved(origin: str, reason: str, as_json: bool) -> None:
    if as_json:
        shown = {"served": False, "origin": origin, "reason": reason}
        click.echo(json.dumps(shown, indent=2))
    else:
        click.echo(f"{origin}: not served ({reason})")


def _discover(provider: Provider) -> list[str]:
    # What a sign-in would do: endpoints the issuer's metadata supplies.
    if not provider.issuer or provider.authority:
        return []
    from helper.discovery import discover

    try:
        document = discover(provider.issuer, provider.discovery_url)
    except HelperError as exc:
        return [str(exc)]
    for key, name in _ENDPOINTS.items():
        if document.get(name) and not getattr(provider, key):
            provider.set(key, str(document[name]), "discovery")
    return []


def _url_problems(provider: Provider) -> list[str]:
    # The checks a sign-in applies: https, or http to a loopback address, for
    # endpoints; the loopback listener's own parse for the redirect URL.
    from helper.http import require_secure
    from helper.loopback import parse_redirect

    problems = []
    for key in (key for key in _SHOWN if key in settings.URL_SETTINGS):
        value = getattr(provider, key)
        try:
            if key == "redirect_url" and value:
                parse_redirect(value)
            elif value:
                require_secure(value, key)
        except HelperError as exc:
            problems.append(str(exc))
    return problems


def _row(provider: Provider, cred: Credential, key: str) -> dict[str, object]:
    value: object = getattr(provider, key)
    source = provider.sources.get(key, "default")
    if key in SECRET_KEYS:
        value = MASK if value else ""
    elif key == "scopes":
        value = provider.scope
    elif key == "redirect_ports":
        value = " ".join(map(str, provider.redirect_ports))
    elif key == "redirect_url":
        value = provider.redirect_url or "http://127.0.0.1:<random port>/"
    elif key == "flow":
        value = _flow(provider)
    elif key == "username" and cred.username:
        value, source = cred.username, "request"
    elif key == "auth_params":
        value = " ".join(f"{k}={v}" for k, v in sorted(provider.auth_params.items()))
    return {"value": value, "source": source}


def _flow(provider: Provider) -> str:
    if provider.flow != "auto":
        return provider.flow
    from helper.login import choose_flow

    return f"auto ({choose_flow(provider)} here)"
