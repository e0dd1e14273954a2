"""Playwright with Debian's chromium against pytest-django's live server; no network beyond it."""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# The sync Playwright API runs an event loop in this thread; the ORM calls in the
# tests are ordinary blocking calls, which Django would otherwise refuse there.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}, "locale": "en-GB"}


# Reports every Content-Security-Policy violation to the console, where the page fixture collects
# them (Chromium also logs its own "Refused to ..." line for most of them).
CSP_LISTENER = """document.addEventListener("securitypolicyviolation", function (e) {
  console.error("Content Security Policy violation: " + e.violatedDirective + " " + (e.blockedURI || "inline")
                + " at " + e.sourceFile + ":" + e.lineNumber);
});"""


@pytest.fixture
def page(page):
    """Every request to anything but the live server's loopback host is aborted. A test whose
    pages broke the Content-Security-Policy fails (page.csp_violations lists what was refused)."""
    def guard(route):
        host = urlsplit(route.request.url).hostname
        if host in ("localhost", "127.0.0.1") or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            route.abort()
    page.route("**/*", guard)
    page.set_default_timeout(15_000)
    page.csp_violations = []
    page.add_init_script(CSP_LISTENER)
    page.on("console", lambda message: "Content Security Policy" in message.text
            and page.csp_violations.append(message.text))
    yield page
    assert page.csp_violations == [], "the pages broke the Content-Security-Policy"


@pytest.fixture
def seeded(transactional_db):
    """transactional_db flushes tables after each test, seeded rows included: put them back."""
    from console.roles import setup_roles
    from reports.categories import seed_categories
    from reports.models import Category

    seed_categories(Category)
    return setup_roles()


@pytest.fixture
def shot():
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page, name: str, **kwargs):
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path
    return take
