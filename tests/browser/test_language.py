"""Issue 16 item 1 in a real browser: the header's "Cymraeg" button switches the citizen pages to
Welsh and the choice is remembered; the Welsh form passes axe like the English one."""
from __future__ import annotations

import re

import pytest

from tests import images
from tests.browser.conftest import axe_problems
from tests.reports.test_i18n import compiled_catalogues  # noqa: F401 (the .mo files, as `make test` builds them)

pytestmark = pytest.mark.browser


def test_the_switcher_changes_the_language_and_remembers_it(live_server, page, seeded, tmp_path):
    page.goto(f"{live_server.url}/report/")
    assert page.locator("html").get_attribute("lang") == "en-GB"
    page.get_by_role("button", name="Cymraeg").click()
    page.get_by_role("heading", name="Rhoi gwybod am broblem").wait_for()
    assert page.locator("html").get_attribute("lang") == "cy"
    assert axe_problems(page, "Welsh form") == []

    photo = tmp_path / "twll.jpg"
    photo.write_bytes(images.jpeg(lat=51.4816, lon=-3.1791))
    page.set_input_files("input[name=photo]", str(photo))
    page.get_by_role("button", name="Anfon adroddiad").click()  # a new page load: the cookie is remembered
    page.wait_for_url(re.compile(r"/report/[A-Z0-9]{10}/thanks/$"))
    page.get_by_role("heading", name="Diolch — mae eich adroddiad wedi dod i law").wait_for()
    page.get_by_role("link", name="Dilyn yr adroddiad hwn").click()
    page.get_by_text("Beth sy'n digwydd nesaf").wait_for()

    page.get_by_role("button", name="English").click()
    page.get_by_text("What happens next").wait_for()
    assert page.locator("html").get_attribute("lang") == "en-GB"
