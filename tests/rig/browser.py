"""Walk oidc-provider's dev login, consent and device pages in headless Chromium.

Usable as `python tests/rig/browser.py URL [--log FILE]` (what the open-browser
script runs for the helper) and as `approve(url)` from tests.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Request, Route, sync_playwright

log = logging.getLogger("rig.browser")

CHROMIUM = os.environ.get("OAUTH_RIG_CHROMIUM", "/usr/bin/chromium")

# Extra test host names that stand for 127.0.0.1 (comma separated); Chromium
# is told to resolve them there and they count as loopback below.
EXTRA_HOSTS_ENV = "OAUTH_RIG_HOSTS"

# Quiet, offline Chromium: no sync, updates or background fetches. Playwright
# adds --no-sandbox itself as root; it is listed so non-root runs match.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]

LOGIN_FIELD = "input[name=login]"
CONSENT_FORM = "form:has(input[name=prompt][value=consent])"
DEVICE_CONFIRM_FORM = "form[id='op.deviceConfirmForm']"
USER_CODE_FIELD = "input[name=user_code]"
SUCCESS_TITLE = "Sign-in Success"
ERROR_TITLE = "oops! something went wrong"


class BrowserError(Exception):
    """The browser could not complete the provider's pages."""


def extra_hosts() -> set[str]:
    """Test host names from OAUTH_RIG_HOSTS, all meant to be loopback."""
    raw = os.environ.get(EXTRA_HOSTS_ENV, "")

    return {name.strip().lower() for name in raw.split(",") if name.strip()}


def is_loopback(host: str) -> bool:
    """Whether the browser may contact this host (the rig is loopback only)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost") or host in extra_hosts():
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolver_rules() -> str:
    """A --host-resolver-rules value: test names to 127.0.0.1, others nowhere."""
    rules = [f"MAP {name} 127.0.0.1" for name in sorted(extra_hosts())]
    # The route filter already refuses these requests; failing DNS as well
    # keeps a page from stalling on a lookup (the dev pages @import fonts).
    rules.append("MAP * ~NOTFOUND")
    rules += ["EXCLUDE localhost", "EXCLUDE *.localhost", "EXCLUDE 127.0.0.1"]

    return ", ".join(rules)


@dataclass
class Walk:
    """Where the walk started and the redirect that ends it."""

    provider_origin: str
    landed: Request | None = None
    settled: bool = False
    blocked: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        """Block every request that would leave the machine."""
        parts = urlsplit(route.request.url)
        if parts.scheme in ("http", "https") and not is_loopback(parts.hostname or ""):
            self.blocked.append(parts.hostname or "")
            route.abort("blockedbyclient")
            return

        route.continue_()

    def on_request(self, request: Request) -> None:
        """Notice the navigation back to a client (route() misses redirects)."""
        parts = urlsplit(request.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if request.is_navigation_request() and origin != self.provider_origin:
            self.landed = request

    def on_done(self, request: Request) -> None:
        """The redirect counts once the listener answered or dropped it."""
        if request is self.landed:
            self.settled = True


def approve(url: str, timeout: float = 60, *, provider_only: bool = False) -> str:
    """Open URL, log in, consent (and confirm a device code); return the end URL.

    The end is a redirect to a loopback client other than the provider, or
    the device flow's success page. With *provider_only* the browser reaches
    the provider alone, as one on another machine would: the redirect to the
    client fails, and its URL is still returned.
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    walk = Walk(provider_origin=f"{parts.scheme}://{parts.netloc}")
    with sync_playwright() as playwright, _refusing_port() as dead_end:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=launch_args(parts, dead_end if provider_only else None),
        )
        try:
            # The provider's certificate comes from the rig's own CA, which
            # Chromium's NSS store does not know; the browser is not under
            # test, the helper's TLS checks are.
            context = browser.new_context(ignore_https_errors=True)
            context.route("**/*", walk.route)
            page = context.new_page()
            page.on("request", walk.on_request)
            page.on("requestfinished", walk.on_done)
            page.on("requestfailed", walk.on_done)
            page.goto(url, wait_until="domcontentloaded")
            return _walk_pages(page, walk, deadline)
        finally:
            if walk.blocked:
                log.info("blocked %s", " ".join(sorted(set(walk.blocked))))
            browser.close()


def launch_args(provider: SplitResult, proxy_port: int | None = None) -> list[str]:
    """Chromium's switches; with *proxy_port*, only *provider* is reached directly.

    Every other request goes to a proxy on *proxy_port* that refuses it.
    "<-loopback>" comes first: Chromium otherwise never proxies loopback.
    """
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules={resolver_rules()}"]
    if proxy_port is None:
        return args

    host = provider.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = provider.port or (443 if provider.scheme == "https" else 80)
    args.remove("--no-proxy-server")
    return [
        *args,
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        f"--proxy-bypass-list=<-loopback>;{host}:{port}",
    ]


@contextlib.contextmanager
def _refusing_port() -> Iterator[int]:
    """A loopback port held without listening: every connection is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def _walk_pages(page: Page, walk: Walk, deadline: float) -> str:
    """Act on each provider page in turn until the flow leaves the provider."""
    acted_on = ""
    while time.monotonic() < deadline:
        if walk.landed is not None:
            return _finish_redirect(page, walk, deadline)
        if _title(page) == SUCCESS_TITLE:
            return page.url
        if _title(page) == ERROR_TITLE:
            raise BrowserError(f"provider error page: {_page_text(page)}")

        if page.url != acted_on and _act(page):
            acted_on = page.url
        page.wait_for_timeout(50)

    raise BrowserError(f"timed out on {_safe_url(page.url)}: {_page_text(page)}")


def _act(page: Page) -> bool:
    """Submit whichever dev page is showing; False if none is recognised yet."""
    if _visible(page, LOGIN_FIELD):
        page.fill(LOGIN_FIELD, "test-user")
        page.fill("input[name=password]", "any-password")
        page.click("form button[type=submit]", no_wait_after=True)
    elif _visible(page, CONSENT_FORM):
        page.click(f"{CONSENT_FORM} button[type=submit]", no_wait_after=True)
    elif page.locator(DEVICE_CONFIRM_FORM).count():
        # The form is hidden; its "Continue" button sits outside it.
        page.click("button[autofocus]", no_wait_after=True)
    elif _visible(page, USER_CODE_FIELD):
        raise BrowserError("the device page asks for a user code: open the URL with it")
    else:
        return False
    log.info("submitted %s", _safe_url(page.url))

    return True


def _finish_redirect(page: Page, walk: Walk, deadline: float) -> str:
    """Give the loopback listener time to answer before the browser closes."""
    assert walk.landed is not None
    give_up = min(deadline, time.monotonic() + 5)
    while not walk.settled and time.monotonic() < give_up:
        page.wait_for_timeout(20)

    return walk.landed.url


def _visible(page: Page, selector: str) -> bool:
    locator = page.locator(selector)

    return locator.count() > 0 and locator.first.is_visible()


def _title(page: Page) -> str:
    try:
        return page.title()
    except PlaywrightError:  # a page mid-navigation has no title yet
        return ""


def _page_text(page: Page) -> str:
    try:
        return " ".join(page.inner_text("body").split())[:500]
    except PlaywrightError:  # best effort, for an error message only
        return "(no page text)"


def _safe_url(url: str) -> str:
    """The URL without its query: codes and states stay out of logs."""
    parts = urlsplit(url)

    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def main(argv: list[str] | None = None) -> int:
    """Command line: approve one URL, exit 0 once the flow left the provider."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--log", help="append progress to this file too")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv)
    _configure_logging(args.log)

    log.info("opening %s", _safe_url(args.url))
    try:
        end = approve(args.url, timeout=args.timeout)
    except (BrowserError, PlaywrightError) as error:
        log.error("FAILED: %s", error)
        return 1
    log.info("DONE at %s", _safe_url(end))

    return 0


def _configure_logging(path: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        handlers.append(logging.FileHandler(path))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s browser[%(process)d] %(message)s",
        handlers=handlers,
    )


if __name__ == "__main__":
    sys.exit(main())
