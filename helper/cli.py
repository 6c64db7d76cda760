"""Commands for people and scripts: ``token``, ``status``, ``logout``, ``explain``.

With :mod:`helper.entry`, the only module that prints or picks an exit code:
0 success, 1 an operational failure, 2 a usage error (click's convention).
"""

import json
import sys
import time
from urllib.parse import urlsplit

import click

from helper import actions, logs, settings
from helper.errors import HelperError
from helper.protocol import Credential
from helper.store import Record, Store

__all__ = ["run"]

_SHOWN = (
    "client_id",
    "scopes",
    "issuer",
    "auth_url",
    "token_url",
    "device_auth_url",
    "redirect_url",
    "flow",
    "username",
    "expiry_margin",
)


def run(args: list[str]) -> int:
    """Run a click command; turn our errors into one line and exit 1."""
    try:
        cli.main(args=args, prog_name="oauth-helper", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("oauth-helper: aborted", err=True)
        return 1
    except HelperError as exc:
        click.echo(f"oauth-helper: {exc}", err=True)
        return 1
    return 0


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
    logs.configure()


def _request(url: str) -> Credential:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise click.BadParameter(
            f"expected an http(s) URL, not {url!r}", param_hint="URL"
        )
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return Credential(protocol=parts.scheme, host=host, username=parts.username or "")


@cli.command()
@click.argument("url")
def token(url: str) -> None:
    """Print a valid access token for URL (signing in if needed)."""
    cred = _request(url)
    resolved = settings.resolve(cred)
    pairs = dict(actions.get(cred, resolved, Store()))
    secret = pairs.get("password") or pairs.get("credential")
    if not secret:
        raise HelperError(
            f"no token for {url}: the host is not configured, or sign-in is off"
        )
    if any(ch in secret for ch in "\r\n\0"):
        raise HelperError(
            "the provider returned a token with a line break; refusing it"
        )
    sys.stdout.write(secret + "\n")


def _describe(record: Record) -> dict[str, object]:
    expiry = record.expiry()
    return {
        "host": f"{record.protocol}://{record.host}/{record.path}".rstrip("/"),
        "username": record.username,
        "client_id": record.client_id,
        "scopes": record.scope,
        "expires": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(expiry))
        if expiry
        else "",
        "refresh_token": bool(record.oauth_refresh_token or record.sealed),
        "store": record.kind,
        "origin": record.origin,
    }


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """List stored credentials (never a secret)."""
    rows = [_describe(r) for r in Store().all_records()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("nothing stored")
    for row in rows:
        click.echo(" ".join(f"{k}={v}" for k, v in row.items() if v != ""))


@cli.command()
@click.argument("url", required=False)
def logout(url: str | None) -> None:
    """Remove stored credentials for URL's host, or all of them."""
    st = Store()
    host = _request(url).host.lower() if url else None
    removed = 0
    for record in list(st.all_records()):
        if host is None or record.host == host:
            removed += st.remove(record)
    click.echo(f"removed {removed} stored credential(s)", err=True)


@cli.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def explain(url: str, as_json: bool) -> None:
    """Show the settings that apply to URL and where each came from."""
    cred = _request(url)
    provider = settings.resolve(cred).provider
    if provider is None:
        click.echo(f"{url}: not served (no preset, git config or file entry)")
        return
    values = {key: getattr(provider, key) for key in _SHOWN}
    values["scopes"] = provider.scope
    values["client_secret"] = "[secure]" if provider.client_secret else ""
    rows = {
        k: {"value": v, "source": provider.sources.get(k, "default")}
        for k, v in values.items()
    }
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for key, row in rows.items():
        click.echo(f"{key}: {row['value']}  ({row['source']})")
