"""The GOV.UK error summary's list (templates/reports/_error_summary.html) built from a bound form."""
from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag
def error_summary_items(form, **links) -> list[dict]:
    """One {"href", "message"} per error, in the order of the fields on the page. links maps a field name
    to its anchor where that is not the field's own input (a radio group); "location" is where the
    form-wide errors that the view marked as about the location (form.location_errors) point."""
    items = [{"href": links.get("location", "") if str(message) in getattr(form, "location_errors", ()) else "",
              "message": message} for message in form.non_field_errors()]
    for field in form:
        if not field.is_hidden:
            items += [{"href": links.get(field.name, f"#{field.id_for_label}"), "message": message}
                      for message in field.errors]
    return items
