"""Text rules shared by every channel that writes free text (citizen form, REST, Open311, staff notes).

Characters XML 1.0 cannot carry (C0 controls other than tab, newline and carriage
return, lone surrogates, U+FFFE, U+FFFF) and DEL are refused at intake: one
such character stored would make every Open311 XML feed that lists the row
unparseable.
"""
from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.utils.translation import gettext as _

from .text import NOT_XML_CHARS

# What feeds cannot carry (reports.text), and DEL, which XML allows but no citizen types.
FORBIDDEN = re.compile(f"[{NOT_XML_CHARS}\x7f]")


def clean_text(value, *, field: str, max_length: int, label: str = "") -> str:
    """`value` stripped, or ValidationError({field: message}) naming the field (`label`, else `field`).

    None counts as empty. Characters and length are checked after stripping.
    """
    label = label or field
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({field: _("%(label)s must be text.") % {"label": label}}, code="invalid")
    value = value.strip()  # also the whitespace-like controls (\x0b, \x1c-\x1f) at either end, as forms do
    if match := FORBIDDEN.search(value):
        raise ValidationError(
            {field: _("%(label)s contains a control character (%(char)s) at position %(position)d; please "
                      "remove it.") % {"label": label, "char": f"U+{ord(match.group()):04X}",
                                       "position": match.start() + 1}},
            code="control_character",
        )
    if len(value) > max_length:
        raise ValidationError(
            {field: _("%(label)s is too long (%(length)s characters); the limit is %(limit)s.") % {
                "label": label, "length": f"{len(value):,}", "limit": f"{max_length:,}"}},
            code="max_length",
        )
    return value


def clean_email(value, *, field: str, max_length: int, label: str = "") -> str:
    """clean_text plus email syntax; "" stays "" (email is optional everywhere)."""
    label = label or _("Email")
    value = clean_text(value, field=field, max_length=max_length, label=label)
    if value:
        try:
            validate_email(value)
        except ValidationError:
            raise ValidationError({field: _("%(label)s: enter a valid email address.") % {"label": label}},
                                  code="invalid") from None
    return value


def clean_url(value, *, field: str, max_length: int, label: str = "") -> str:
    """clean_text plus http(s) URL syntax; "" stays ""."""
    value = clean_text(value, field=field, max_length=max_length, label=label)
    if value:
        try:
            URLValidator(schemes=["http", "https"])(value)
        except ValidationError:
            raise ValidationError({field: _("%(label)s must be an http or https URL.") % {"label": label or field}},
                                  code="invalid") from None
    return value
