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


AXE_SOURCE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def axe_violations(page, *, impacts=("serious", "critical")) -> list[dict]:
    """Runs axe-core (tests/browser/vendor) on the page as it is now and returns the WCAG 2.2 A/AA
    and best-practice violations of the given impacts. Evaluated through the DevTools protocol, so the
    page's Content-Security-Policy stays as it is (an injected <script> tag would break it)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    return [v for v in result["violations"] if v["impact"] in impacts]


def axe_problems(page, name: str) -> list[str]:
    """One line per serious or critical axe violation on the page, with the first elements it names."""
    return [f"{name}: {v['id']} ({v['impact']}): {v['help']} -- "
            + "; ".join(" ".join(map(str, n["target"])) for n in v["nodes"][:5])
            for v in axe_violations(page)]


def axe_check(page, name: str) -> None:
    """Fails the test when axe finds a serious or critical violation on the page."""
    problems = axe_problems(page, name)
    assert not problems, f"axe on {page.url}:\n" + "\n".join(problems)
