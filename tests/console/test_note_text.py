"""Staff notes get the intake's text rules (reports.validation): a public note is Open311's
status_notes, so one control character in it would break every XML feed that lists the report."""
import pytest
from django.core.exceptions import ValidationError

from console import services
from reports.models import ReportEvent


@pytest.mark.django_db
@pytest.mark.parametrize("char", ["\x0b", "\x01", "\x7f", "\ufffe"])
def test_a_note_with_a_control_character_is_refused_naming_it(triager, make_report, char):
    report = make_report()
    with pytest.raises(ValidationError) as err:
        services.report_add_note(report=report, staff=triager, text=f"Crew{char}booked", public=True)
    assert f"Note contains a control character (U+{ord(char):04X})" in err.value.message_dict["note"][0]
    assert not ReportEvent.objects.filter(report=report, action="note").exists()


@pytest.mark.django_db
def test_a_note_keeps_its_line_breaks_and_the_length_limit(triager, make_report):
    report = make_report()
    event = services.report_add_note(report=report, staff=triager, text=" Crew booked\r\nfor Monday\t ", public=False)
    assert event.note == "Crew booked\r\nfor Monday"
    with pytest.raises(ValidationError, match="Note is too long"):
        services.report_add_note(report=report, staff=triager, text="x" * 2001, public=False)
    with pytest.raises(ValidationError, match="The note is empty"):
        services.report_add_note(report=report, staff=triager, text="  ", public=False)
