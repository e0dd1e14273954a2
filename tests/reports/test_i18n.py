"""Issue 16 items 1 and 4: every citizen page, form error, e-mail and API message in English and
Welsh (the switcher's cookie, then Accept-Language), Welsh category names, and a status page in
plain words with a "find my report" box. The catalogues are compiled here as `make test` does."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.shortcuts import render
from django.test import RequestFactory
from django.utils import timezone, translation
from django.utils.translation.reloader import translation_file_changed

from notifications.tokens import unsubscribe_token
from reports.models import Category, Report
from reports.services import report_create
from reports.tokens import reporter_link_token
from tests.notifications.conftest import committed, mailbox, text_of  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db
ROOT = Path(settings.BASE_DIR)
CY_PO = ROOT / "locale" / "cy" / "LC_MESSAGES" / "django.po"
WELSH, ENGLISH = "Rhoi gwybod am broblem", "Report a problem"  # the header on every citizen page


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogues():
    """The .mo files are built, not committed: compile them when missing or older than the .po,
    then drop the catalogues this process may have cached without them."""
    stale = [po for po in ROOT.glob("locale/*/LC_MESSAGES/django.po")
             if not po.with_suffix(".mo").exists() or po.with_suffix(".mo").stat().st_mtime < po.stat().st_mtime]
    if stale:
        call_command("compilemessages", ignore_patterns=[".venv", ".local", "*site-packages*"], verbosity=0)
    translation_file_changed(sender=None, file_path=CY_PO.with_suffix(".mo"))


@pytest.fixture(autouse=True)
def categories(db):
    """The seeded categories, also after another module's transactional test flushed them."""
    from reports.categories import seed_categories

    seed_categories(Category)


def welsh(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "cy"
    return client


def make_report(unique_jpeg, **kwargs) -> Report:
    kwargs.setdefault("latitude", 51.48)
    kwargs.setdefault("longitude", -3.18)
    return report_create(photo=unique_jpeg(), **kwargs).report


def english_sentences() -> set[str]:
    """Translated msgids long enough that seeing one on a Welsh page means a string was missed."""
    out = subprocess.run(["msgattrib", "--translated", "--no-fuzzy", "--no-obsolete", "--no-wrap", str(CY_PO)],
                         capture_output=True, text=True, check=True).stdout
    found = set()
    for msgid in re.findall(r'^msgid "(.+)"$', out, re.M):
        plain = re.split(r"%\(\w+\)[sdr]|\{\w*\}|<[^>]+>|%s", msgid.replace('\\"', '"'))
        found.update(part.strip() for part in plain if len(part.strip()) >= 20)
    return found


def assert_welsh(page: str) -> None:
    assert '<html lang="cy">' in page and WELSH in page
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S))
    text = " ".join(html.unescape(text).split())
    left = sorted(s for s in english_sentences() if s in text)
    assert not left, f"English left on a Welsh page: {left}"


def citizen_pages(client, unique_jpeg) -> dict[str, tuple[str, int]]:
    """Every citizen page's path and its expected status."""
    report = make_report(unique_jpeg, reporter_email="rita@example.org", address="Heol y Frenhines, Caerdydd")
    ref = report.service_request_id
    return {
        "form": ("/report/", 200),
        "thanks": (f"/report/{ref}/thanks/", 200),
        "status": (f"/report/{ref}/", 200),
        "find": ("/report/find/?reference=ZZZZZZZZZZ", 404),
        "manage": (f"/report/{ref}/manage/{reporter_link_token(reference=ref)}/", 200),
        "manage_invalid": (f"/report/{ref}/manage/forged/", 403),
        "unsubscribe": (f"/mail/unsubscribe/{unsubscribe_token(email='rita@example.org', reference=ref)}/", 200),
        "unsubscribe_invalid": ("/mail/unsubscribe/forged/", 400),
    }


def test_every_citizen_page_renders_in_welsh_with_no_english_left(client, unique_jpeg):
    welsh(client)
    for name, (path, status) in citizen_pages(client, unique_jpeg).items():
        response = client.get(path)
        assert response.status_code == status, name
        assert_welsh(response.content.decode())


def test_every_citizen_page_renders_in_english(client, unique_jpeg):
    for name, (path, status) in citizen_pages(client, unique_jpeg).items():
        response = client.get(path)
        assert response.status_code == status, name
        page = response.content.decode()
        assert '<html lang="en-GB">' in page and ENGLISH in page and WELSH not in page, name


def test_unavailable_and_locked_out_pages_in_welsh():
    request = RequestFactory().get("/report/")
    with translation.override("cy"):
        request.LANGUAGE_CODE = "cy"
        assert_welsh(render(request, "unavailable.html").content.decode())
        page = render(request, "locked_out.html", {"minutes": 15}).content.decode()
        assert_welsh(page)
        assert "wedi'i atal am 15 munud" in page


def test_the_welsh_catalogue_covers_every_message_in_the_code(tmp_path):
    """makemessages over a copy of the code, merged with the committed catalogue: every msgid
    in use has a Welsh msgstr; a fuzzy one (shown in English) only with a '# review:' note."""
    copy = tmp_path / "src"
    for part in ("config", "reports", "notifications", "console", "classifier", "inference", "templates", "locale"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", copy / "manage.py")
    subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "cy", "--no-location", "--no-obsolete"],
                   cwd=copy, check=True, capture_output=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                                  "DJANGO_SETTINGS_MODULE": "config.settings.test"})
    po = copy / "locale" / "cy" / "LC_MESSAGES" / "django.po"
    untranslated = subprocess.run(["msgattrib", "--untranslated", "--no-obsolete", "--no-wrap", str(po)],
                                  capture_output=True, text=True, check=True).stdout
    missing = [m for m in re.findall(r'^msgid "(.+)"$', untranslated, re.M)]
    assert not missing, f"add Welsh for these to locale/cy/LC_MESSAGES/django.po: {missing}"
    fuzzy = subprocess.run(["msgattrib", "--only-fuzzy", "--no-obsolete", "--no-wrap", str(po)],
                           capture_output=True, text=True, check=True).stdout
    for entry in fuzzy.split("\n\n"):
        if re.search(r'^msgid ".+"$', entry, re.M):
            assert "# review:" in entry, f"a fuzzy entry needs a '# review:' note: {entry}"
    subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(CY_PO)], check=True)


def test_the_switcher_remembers_the_language(client):
    page = client.get("/report/").content.decode()
    assert 'action="/i18n/setlang/"' in page and 'name="language" value="cy" lang="cy">Cymraeg</button>' in page
    response = client.post("/i18n/setlang/", {"language": "cy", "next": "/report/"})
    assert response.status_code == 302 and response["Location"] == "/report/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "cy"
    page = client.get("/report/", HTTP_ACCEPT_LANGUAGE="en-GB").content.decode()  # the choice beats the browser
    assert WELSH in page and 'value="en-gb" lang="en-GB">English</button>' in page
    client.post("/i18n/setlang/", {"language": "en-gb", "next": "/report/"})
    assert ENGLISH in client.get("/report/").content.decode()


def test_accept_language_picks_welsh_when_nothing_was_chosen(client):
    assert WELSH in client.get("/report/", HTTP_ACCEPT_LANGUAGE="cy-GB,cy;q=0.9,en;q=0.5").content.decode()
    assert ENGLISH in client.get("/report/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()  # unsupported: English


def test_html_lang_and_hreflang_alternates(client):
    page = client.get("/report/?lang=cy").content.decode()
    assert '<html lang="cy">' in page and WELSH in page
    assert '<link rel="alternate" hreflang="cy" href="http://testserver/report/?lang=cy">' in page
    assert '<link rel="alternate" hreflang="en-gb" href="http://testserver/report/?lang=en-gb">' in page
    assert 'name="next" value="/report/"' in page  # switching never returns to a ?lang= that would override it
    assert ENGLISH in client.get("/report/").content.decode()  # ?lang= shows one page, stores nothing
    assert ENGLISH in client.get("/report/?lang=xx").content.decode()  # an unknown language is ignored


def test_the_console_stays_in_english(client):
    response = welsh(client).get("/console/login/")
    assert response.wsgi_request.LANGUAGE_CODE == "en-gb"


def test_category_names_in_welsh_on_the_form_status_page_and_open311(client, unique_jpeg):
    pothole = Category.objects.get(slug="pothole")
    assert pothole.name_cy == "Twll yn y ffordd"  # seeded by the migration, editable in the admin
    Category.objects.filter(slug="graffiti").update(name_cy="")  # blank: the English name is shown
    report = make_report(unique_jpeg, category="pothole")
    welsh(client)
    form = client.get("/report/").content.decode()
    assert '<option value="pothole">Twll yn y ffordd</option>' in form
    assert '<option value="graffiti">Graffiti</option>' in form
    assert '<option value="fly_tipping">Tipio anghyfreithlon</option>' in form
    status = client.get(f"/report/{report.service_request_id}/").content.decode()
    assert re.search(r'id="status-category">Twll yn y ffordd<', status)
    services = client.get("/open311/v2/services.json?locale=cy").json()
    named = {s["service_code"]: s for s in services}
    assert named["pothole"]["service_name"] == "Twll yn y ffordd"
    assert named["streetlight"]["description"].startswith("Golau stryd sydd wedi diffodd")
    client.cookies.clear()
    by_header = client.get("/open311/v2/services.json", HTTP_ACCEPT_LANGUAGE="cy").json()
    assert {s["service_code"]: s["service_name"] for s in by_header}["pothole"] == "Twll yn y ffordd"
    english = {s["service_code"]: s["service_name"] for s in client.get("/open311/v2/services.json").json()}
    assert english["pothole"] == "Pothole"


def test_a_welsh_form_error_message(client, unique_jpeg):
    response = welsh(client).post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg()),
                                               "email": "nid-e-bost"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Rhowch gyfeiriad ebost dilys" in page  # Django's own Welsh for its email check
    response = client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg())})
    assert response.status_code == 400 and "Mae angen lleoliad" in html.unescape(response.content.decode())
    assert Report.objects.count() == 0


def test_the_api_answers_in_the_language_asked_for(client, unique_jpeg):
    response = client.post("/api/v1/reports/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg()),
                                                "latitude": "91", "longitude": "0"}, HTTP_ACCEPT_LANGUAGE="cy")
    assert response.status_code == 400
    assert "rhaid i hwn fod rhwng -90 a 90" in response.json()["detail"]
    response = client.post("/api/v1/reports/", {"photo": SimpleUploadedFile("p.jpg", b"not a photo"),
                                                "latitude": "51.5", "longitude": "0"}, HTTP_ACCEPT_LANGUAGE="cy")
    assert response.status_code == 400 and "Nid yw'r ffeil hon yn llun" in response.json()["detail"]


def test_a_reporter_gets_their_mail_in_the_language_they_used(client, unique_jpeg, mailbox, committed):
    with committed():
        welsh(client).post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg(lat=51.48, lon=-3.18)),
                                        "email": "rhys@example.org"})
    report = Report.objects.get()
    assert report.language == "cy"
    [message] = mailbox.to("rhys@example.org")
    assert message["Subject"] == f"Mae eich adroddiad {report.service_request_id} wedi dod i law"
    text = text_of(message)
    assert "Diolch: mae eich adroddiad wedi dod i law" in text and "Thank you" not in text
    client.cookies.clear()
    with committed():
        client.post("/report/", {"photo": SimpleUploadedFile("p.jpg", unique_jpeg(lat=51.48, lon=-3.18)),
                                 "email": "rose@example.org"})
    [message] = mailbox.to("rose@example.org")
    assert message["Subject"].startswith("We have your report")


def test_the_status_page_says_what_where_when_what_next_and_the_target(client, unique_jpeg):
    report = make_report(unique_jpeg, category="pothole", address="Heol y Frenhines, Caerdydd")
    Report.objects.filter(pk=report.pk).update(status=Report.Status.NEEDS_REVIEW)
    report.refresh_from_db()
    path = f"/report/{report.service_request_id}/"
    page = client.get(path).content.decode()
    assert "Waiting for our team to look at it" in page and "Needs review" not in page
    assert re.search(r'id="status-category">Pothole<', page)
    assert re.search(r'id="status-where">Heol y Frenhines, Caerdydd<', page)
    assert f'id="status-reported">{timezone.localtime(report.created_at).strftime("%-d %B %Y")}' in page
    assert "pass it to the people who deal with it" in page
    assert "We aim to fix this by" in page
    cy = html.unescape(welsh(client).get(path).content.decode())
    assert "Yn aros i'n tîm edrych arno" in cy and "Ein nod yw trwsio hyn erbyn" in cy
    assert "Beth sy'n digwydd nesaf" in cy and "Bydd rhywun yn ein tîm yn gwirio" in cy


def test_the_status_page_without_an_address_says_where_on_the_map(client, unique_jpeg):
    report = make_report(unique_jpeg, latitude=51.48123, longitude=-3.18456)
    page = client.get(f"/report/{report.service_request_id}/").content.decode()
    assert re.search(r'id="status-where">On the map at 51.48123, -3.18456<', page)


def test_find_my_report(client, unique_jpeg):
    ref = make_report(unique_jpeg).service_request_id
    assert 'id="find-report"' in client.get("/report/").content.decode()  # on the home page
    assert 'id="find-report"' in client.get(f"/report/{ref}/").content.decode()  # and on a report's page
    response = client.get("/report/find/", {"reference": f" {ref[:5].lower()}-{ref[5:]} "})  # as read out
    assert response.status_code == 302 and response["Location"] == f"/report/{ref}/"
    response = client.get("/report/find/", {"reference": "ZZZZZZZZZZ"})
    assert response.status_code == 404
    assert "We cannot find a report with the reference ZZZZZZZZZZ" in response.content.decode()
    assert 'value="ZZZZZZZZZZ"' in response.content.decode()  # the box keeps what was typed
    for bad in ("", "<script>", "x" * 60):
        response = client.get("/report/find/", {"reference": bad})
        assert response.status_code == 400 and 'id="find-error"' in response.content.decode()
    response = welsh(client).get("/report/find/", {"reference": "ZZZZZZZZZZ"})
    assert response.status_code == 404
    assert "Ni allwn ddod o hyd i adroddiad gyda'r cyfeirnod ZZZZZZZZZZ" in html.unescape(response.content.decode())
