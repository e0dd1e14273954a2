"""`{{ slug|label_name:label_names }}`: a label as staff read it (reports.selectors.label_names)."""
from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def label_name(label: str, names: dict[str, str]) -> str:
    """The category's name (or NO_ISSUE's); a label no category has any more stays as it is."""
    return names.get(label, label)
