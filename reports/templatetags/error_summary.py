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


@register.simple_tag
def error_summary_from_dict(errors: dict, **links) -> list[dict]:
    """The same for a page that keeps a service's message_dict: links maps each field name on the page to
    its input's anchor; errors under any other key (None, "status") are listed without a link."""
    return [{"href": links.get(key, "") if key else "", "message": message}
            for key, messages in errors.items() for message in messages]
