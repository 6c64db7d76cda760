"""HTTP to OAuth servers: one session policy (TLS, timeouts, User-Agent) and the
parsing of token endpoint answers into tokens or RFC 6749 §5.2 errors.
"""

import ipaddress
import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import certifi
import requests
import requests.adapters
import urllib3.util
from requests.models import PreparedRequest, Response

from helper import bounded, timeouts
from helper.errors import ConfigError, FlowError, HelperError, TransientError

__all__ = [
    "BODY_LIMIT",
    "TIMEOUT",
    "USER_AGENT",
    "ca_bundle",
    "host_of",
    "is_loopback",
    "parse_json",
    "post_form",
    "require_secure",
    "session",
    "shown",
]

log = logging.getLogger(__name__)

TIMEOUT = timeouts.HTTP
# Characters no host name or address holds (a space, an escape, a quote...):
# such a URL is a typo, not a network problem.
_NOT_IN_HOSTS = frozenset(' %<>"{}|\\^`')
_DESCRIPTION_LIMIT = 200
_MAX_REDIRECTS = 3
# Token, discovery and device answers are a few KB (a JWT with many group
# claims some tens): a body past this is a broken or hostile server.
BODY_LIMIT = 1024 * 1024


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("oauth-helper")
    except metadata.PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"oauth-helper/{_version()}"


def ca_bundle() -> str:
    """The CA file to trust: REQUESTS_CA_BUNDLE, else SSL_CERT_FILE, else certifi."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        path = os.environ.get(name, "")
        if path:
            return path

    return certifi.where()


class _Adapter(requests.adapters.HTTPAdapter):
    """Forces a timeout and certificate checks on every request it sends."""

    def __init__(self, verify: str) -> None:
        super().__init__()
        self._verify = verify

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        # requests merges REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE over Session.verify
        # and accepts verify=False from any caller: decide here, once.
        response = super().send(
            request, True, timeout or TIMEOUT, self._verify, cert, proxies
        )
        if not stream:
            _read_capped(response)
        return response


def _within_deadline(request: Callable[..., Response]) -> Callable[..., Response]:
    """*request* (a session's), bounded as a whole, redirects included.

    A timeout bounds each socket read, not the exchange: a server that drips
    a byte every few seconds would hold the key's lock forever.
    """

    def bounded_request(*args: Any, **kwargs: Any) -> Response:
        try:
            return bounded.within(lambda: request(*args, **kwargs), sum(TIMEOUT))
        except TimeoutError:
            raise requests.exceptions.Timeout(
                f"no complete answer within {sum(TIMEOUT):g} s"
            ) from None

    return bounded_request


def _read_capped(response: Response) -> None:
    """Read the body now, refusing one larger than any OAuth answer can be."""
    try:
        body = response.raw.read(BODY_LIMIT + 1, decode_content=True)
    finally:
        response.close()
    if len(body) > BODY_LIMIT:
        raise FlowError(
            f"{host_of(response.url)} answered with more than "
            f"{BODY_LIMIT // 1024} KiB; refusing it"
        )
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]


def _no_netrc(request: PreparedRequest) -> PreparedRequest:
    return request


def _check_redirect(response: Response, *args: object, **kwargs: object) -> None:
    """Refuse a redirect that would carry secrets, or leave https, elsewhere.

    A response hook runs before requests follows a redirect. A 307/308 to a
    POST would re-send the form (refresh token, code, client_secret) to the
    new location, unchecked by require_secure; OAuth endpoints have no reason
    to redirect a POST (RFC 6749 §3.2 names one token endpoint URL). A GET
    (discovery) may follow a redirect to a URL require_secure accepts.
    """
    if not response.is_redirect:
        return

    try:
        _check_target(response)
    except HelperError:
        # Unread, the response would hold its connection open.
        response.close()
        raise


def _check_target(response: Response) -> None:
    host = host_of(response.url)
    method = response.request.method
    if method != "GET":
        # A FlowError without an RFC code, not a TransientError: retrying
        # will not help, and a refresh keeps its refresh token.
        raise FlowError(
            f"{host} answered a redirect to a {method}; not followed, "
            "check the endpoint URL"
        )

    target = urllib.parse.urljoin(response.url, response.headers["Location"])
    require_secure(target, f"the redirect from {host}")


def configure(http: requests.Session) -> requests.Session:
    """Apply the policy to *http* (also used on requests-oauthlib's session)."""
    bundle = ca_bundle()
    http.verify = bundle
    for prefix in ("https://", "http://"):
        http.mount(prefix, _Adapter(bundle))
    http.headers["User-Agent"] = USER_AGENT
    # A git user's ~/.netrc often has the forge host: requests would add it
    # as Basic auth to token requests that must carry no user password.
    http.auth = _no_netrc
    http.hooks["response"].append(_check_redirect)
    # OAuth endpoints have no reason to redirect more than a hop or two
    # (discovery behind a proxy, say); each hop would cost a full exchange.
    http.max_redirects = _MAX_REDIRECTS
    # On the instance: requests-oauthlib's and MSAL's calls go through it too.
    http.request = _within_deadline(http.request)  # type: ignore[method-assign]
    return http


def session() -> requests.Session:
    """A session with certificate checks, a default timeout and our User-Agent."""
    return configure(requests.Session())


def host_of(url: str) -> str:
    """The host (and port, if any) of *url*, for messages."""
    try:
        netloc = urllib.parse.urlsplit(url).netloc
    except ValueError:  # an unclosed "["
        return "(not a URL)"
    # Never the URL itself in its place: its query may hold a token.
    return netloc.rpartition("@")[2] or "(no host)"


def is_loopback(host: str) -> bool:
    """Whether *host* names this machine: localhost, 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure(url: str, what: str) -> None:
    """Raise ConfigError unless *url* is https, or http to a loopback host."""
    # A URL is shown on the terminal and given to the browser: an escape
    # sequence in a discovered endpoint must not reach either.
    if not url.isprintable():
        raise ConfigError(f"{what} holds a control character")
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # read to check it: https://h:99999/ fails here
        # The host requests will connect to is urllib3's reading of the URL;
        # where it differs from urlsplit's (http://evil\@127.0.0.1/ is
        # evil to one and loopback to the other) the URL is refused.
        connects_to = urllib3.util.parse_url(url).host or ""
    except ValueError:  # an unclosed "[", a port past 65535; LocationParseError
        raise ConfigError(f"{what} is not a URL") from None
    if "\\" in url or "@" in parts.netloc:
        # Neither has a place in an endpoint: a backslash is no URL
        # character (RFC 3986), and user info would travel with every request.
        raise ConfigError(f"{what} is not a URL")
    host = parts.hostname or ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))
    if not (secure and host):
        raise ConfigError(f"{what} must be an https URL, got {shown(url)!r}")
    if connects_to.strip("[]").lower() != host.lower() or not _plausible_host(host):
        raise ConfigError(f"{what} is not a URL")


def _plausible_host(host: str) -> bool:
    # What urllib3 refuses later, as an error that reads like a network one:
    # odd characters, an empty label (a..b), a label over 63 octets.
    if any(ch in _NOT_IN_HOSTS for ch in host):
        return False
    labels = host.rstrip(".").split(".") if host and ":" not in host else []
    return all(0 < len(label) <= 63 for label in labels)


def shown(url: str) -> str:
    """*url* as a message may show it: scheme, host and path only.

    A misconfigured URL may carry a password as user info, a token in its
    query or fragment.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(not a URL)"
    if not parts.scheme:
        return "(not a URL)"
    return f"{parts.scheme}://{host_of(url)}{parts.path}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:_DESCRIPTION_LIMIT]


def parse_json(response: Response) -> dict[str, Any]:
    """The JSON object of a token-endpoint style answer, or the matching error."""
    host = host_of(response.url)
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(
            f"{host} answered HTTP {response.status_code}; retry later"
        )

    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TransientError(
            f"{host} answered HTTP {response.status_code} without a JSON object"
        )

    _raise_for_error(host, response.status_code, body)
    return body


def _raise_for_error(host: str, status: int, body: Mapping[str, Any]) -> None:
    # RFC 6749 §5.2: an error body has "error" and optional "error_description".
    error = _one_line(body.get("error") or "")
    if not error and status < 400:
        return

    description = _one_line(body.get("error_description") or "")
    detail = f"{error or f'HTTP {status}'}" + (
        f": {description}" if description else ""
    )
    raise FlowError(f"{host} refused the request: {detail}", error, description)


def post_form(
    url: str, data: Mapping[str, str], *, auth: tuple[str, str] | None = None
) -> dict[str, Any]:
    """POST a form to an OAuth endpoint and return its JSON answer."""
    require_secure(url, "OAuth endpoint")
    headers = {"Accept": "application/json"}
    try:
        with session() as http:
            response = http.post(url, data=dict(data), auth=auth, headers=headers)
    except requests.exceptions.SSLError:
        # Retrying will not help: the CA file is wrong or the server is not
        # who it claims to be.
        raise ConfigError(
            f"the TLS certificate of {host_of(url)} is not trusted; check "
            "REQUESTS_CA_BUNDLE or SSL_CERT_FILE"
        ) from None
    except (requests.exceptions.InvalidURL, ValueError):
        # urllib3's LocationParseError (https://a..b/) is a ValueError too.
        raise ConfigError(f"{shown(url)} is not a valid URL") from None
    except requests.RequestException as exc:
        # The exception text may quote the URL; name the host and kind only.
        raise TransientError(
            f"cannot reach {host_of(url)}: {type(exc).__name__}; check the network"
        ) from None

    log.debug("POST %s -> HTTP %s", shown(url), response.status_code)
    return parse_json(response)
