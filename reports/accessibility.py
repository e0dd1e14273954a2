"""The accessibility statement page (the Public Sector Bodies Accessibility Regulations ask for one)."""
from __future__ import annotations

import datetime

from django.conf import settings
from django.shortcuts import render

# When the pages were last checked (axe-core inside the browser tests, tests/browser/test_accessibility.py,
# on every citizen and console page); update it, and the statement's text, after the next check.
TESTED_ON = datetime.date(2026, 12, 1)


def accessibility_statement(request):
    return render(request, "reports/accessibility.html", {
        "tested_on": TESTED_ON, "contact_email": settings.ACCESSIBILITY_CONTACT_EMAIL})
