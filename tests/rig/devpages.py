"""Walk oidc-provider's dev pages with plain HTTP form posts, no browser.

About 50 ms instead of a browser's 2 s: for tests whose subject is not the
browser hand-off but needs a logged-in grant (refresh, git, store tests).
"""

from __future__ import annotations

import contextlib
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import requests

from rig.browser import (
    ERROR_TITLE,
    SUCCESS_TITLE,
    BrowserError,
    extra_hosts,
    is_loopback,
)

MAX_STEPS = 20


class _Forms(HTMLParser):
    """The page title and each form's action and named input values."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.forms: list[dict[str, str]] = []
        self.errors: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "title" or (tag == "p" and values.get("class") == "red"):
            # The dev pages show a failure as <p class="red">.
            self._in = tag
        elif tag == "form":
            self.forms.append({"__action": values.get("action", "")})
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1][values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data.strip()
        elif self._in == "p":
            self.errors.append(data.strip())


def approve_fast(url: str, ca_path: str, timeout: float = 30) -> str:
    """Like browser.approve(): log in, consent, confirm; return the end URL.

    A final redirect to a loopback client is requested once, so a waiting
    listener receives its code as it would from a browser.
    """
    origin = _origin(url)
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE must not override verify
        session.verify = ca_path
        method, data = "GET", None
        for _ in range(MAX_STEPS):
            if time.monotonic() > deadline:
                break
            target, headers = via_loopback(url)
            response = session.request(
                method,
                target,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=10,
            )
            if response.is_redirect:
                url, method, data = (
                    urljoin(url, response.headers["Location"]),
                    "GET",
                    None,
                )
                if _origin(url) != origin:
                    _deliver(session, url)
                    return url
                continue
            url, data = _next_form(url, response.text)
            method = "POST"
            if data is None:
                return url

    raise BrowserError(f"the provider's pages did not end; last at {url}")


def via_loopback(url: str) -> tuple[str, dict[str, str]]:
    """Send a *.localhost URL to 127.0.0.1 with its Host header.

    glibc does not resolve *.localhost names (Chromium does); the rig's
    certificate covers 127.0.0.1 and the provider pins its own host name.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host == "localhost" or not (
        host.endswith(".localhost") or host in extra_hosts()
    ):
        return url, {}
    port = f":{parts.port}" if parts.port else ""

    return parts._replace(netloc=f"127.0.0.1{port}").geturl(), {"Host": parts.netloc}


def _next_form(url: str, html: str) -> tuple[str, dict[str, str] | None]:
    """The form this page wants submitted, or (url, None) on the success page."""
    page = _Forms()
    page.feed(html)
    if page.title == SUCCESS_TITLE:
        return url, None
    if page.title == ERROR_TITLE or not page.forms:
        raise BrowserError(f"unexpected provider page {page.title!r} at {url}")

    if page.errors:
        raise BrowserError(f"provider page at {url} says: {' '.join(page.errors)}")

    form = dict(page.forms[0])
    action = urljoin(url, form.pop("__action") or url)
    if "login" in form:
        form.update(login="test-user", password="any-password")

    return action, form


def _deliver(session: requests.Session, url: str) -> None:
    """Hit the client's loopback redirect; it may close straight after."""
    if not is_loopback(urlsplit(url).hostname or ""):
        raise BrowserError(f"refusing to follow a non-loopback redirect: {url}")
    # A one-shot listener may close before answering; the code was sent.
    with contextlib.suppress(requests.ConnectionError):
        target, headers = via_loopback(url)
        session.get(target, headers=headers, timeout=5, allow_redirects=False).close()


def _origin(url: str) -> str:
    parts = urlsplit(url)

    return f"{parts.scheme}://{parts.netloc}"
