"""Staff actions: labels, workflow, duplicates, notes, assignment, conflicts."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from console import services
from console.models import ReportAssignment
from console.services import VersionConflict
from reports.models import Report, Team
from reports.selectors import public_notes, public_status

from .conftest import category

S = Report.Status


@pytest.mark.django_db
def test_verify_agreeing_with_model_sets_label_and_triages(triager, make_report):
    report = make_report(predicted="pothole")
    done = services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    done.refresh_from_db()
    assert (done.final_category.slug, done.verified_by, done.status, done.version) == ("pothole", triager, S.TRIAGED, 2)
    assert done.verified_at is not None
    event = done.events.get(action="verify")
    assert (event.field, event.from_value, event.to_value, event.actor) == ("final_category", "", "pothole", triager)


@pytest.mark.django_db
def test_correcting_the_model_is_recorded_as_a_correction(triager, make_report):
    report = make_report(predicted="pothole")
    services.report_verify(report=report, staff=triager, category=category("graffiti"), expected_version=1)
    assert report.events.filter(action="correct", to_value="graffiti").exists()


@pytest.mark.django_db
def test_stale_version_raises_conflict_and_writes_nothing(triager, supervisor, make_report):
    report = make_report()
    services.report_verify(report=report, staff=supervisor, category=category("graffiti"), expected_version=1)
    with pytest.raises(VersionConflict) as exc:
        services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    assert exc.value.current.final_category.slug == "graffiti"
    report.refresh_from_db()
    assert (report.final_category.slug, report.verified_by, report.version) == ("graffiti", supervisor, 2)
    assert report.events.filter(actor=triager).count() == 0


@pytest.mark.django_db
def test_second_staff_member_gets_409_with_the_current_state(client, triager, supervisor, make_report):
    report = make_report()
    url = reverse("console:verify", args=[report.service_request_id])
    client.force_login(supervisor)
    assert client.post(url, {"version": 1, "category": "graffiti"}).status_code == 302
    client.force_login(triager)
    response = client.post(url, {"version": 1, "category": "pothole"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "someone else changed this report first" in html
    assert "Graffiti" in html and "sam" in html and 'name="version" value="2"' in html
    report.refresh_from_db()
    assert report.final_category.slug == "graffiti"


@pytest.mark.django_db
def test_allowed_transitions_follow_the_workflow(triager, make_report):
    report = make_report()
    with pytest.raises(ValidationError, match="Cannot go from needs_review to fixed"):
        services.report_set_status(report=report, staff=triager, status=S.FIXED, expected_version=1)
    with pytest.raises(ValidationError, match="Verify the category first"):
        services.report_set_status(report=report, staff=triager, status=S.TRIAGED, expected_version=1)
    report = services.report_verify(report=report, staff=triager, category=category("pothole"), expected_version=1)
    report = services.report_set_status(report=report, staff=triager, status=S.IN_PROGRESS, expected_version=2)
    with pytest.raises(ValidationError):  # duplicate only through report_mark_duplicate
        services.report_set_status(report=report, staff=triager, status=S.DUPLICATE, expected_version=3)
    report = services.report_set_status(report=report, staff=triager, status=S.FIXED, expected_version=3)
    assert report.status == S.FIXED


@pytest.mark.django_db
def test_rejecting_records_a_no_issue_label(triager, make_report):
    report = make_report(predicted="no_issue")
    report = services.report_set_status(report=report, staff=triager, status=S.REJECTED, expected_version=1,
                                        reason="not_council")
    assert (report.status, report.final_category, report.verified_by) == (S.REJECTED, None, triager)
    assert report.events.filter(action="reject", to_value="no_issue").exists()
    with pytest.raises(ValidationError, match="reopen it"):
        services.report_verify(report=report, staff=triager, category=category("pothole"),
                               expected_version=report.version)


@pytest.mark.django_db
def test_mark_duplicate_points_the_citizen_at_the_original(supervisor, make_report):
    original = make_report(status=S.IN_PROGRESS)
    dup = make_report(lat=51.50002)
    dup = services.report_mark_duplicate(report=dup, original=original, staff=supervisor, expected_version=1)
    assert (dup.status, dup.duplicate_of) == (S.DUPLICATE, original)
    assert public_status(dup) == original
    assert dup.events.filter(action="duplicate", to_value=original.service_request_id).exists()
    with pytest.raises(ValidationError, match="itself a duplicate"):
        services.report_mark_duplicate(report=original, original=dup, staff=supervisor, expected_version=1)


@pytest.mark.django_db
def test_public_notes_reach_the_public_record_private_ones_do_not(triager, make_report):
    report = make_report()
    services.report_add_note(report=report, staff=triager, text="Crew booked for Monday", public=True)
    services.report_add_note(report=report, staff=triager, text="Caller was rude", public=False)
    assert [e.note for e in public_notes(report)] == ["Crew booked for Monday"]


@pytest.mark.django_db
def test_assignment_to_a_person_and_a_team_by_hand(supervisor, triager, make_report):
    roads = Team.objects.create(slug="roads", name="Roads")
    report = make_report()
    report = services.report_assign(report=report, staff=supervisor, assignee=triager, team=roads, expected_version=1)
    report.refresh_from_db()
    assert (report.team, report.routing_rule, report.version) == (roads, None, 2)
    a = ReportAssignment.objects.get(report=report)
    assert (a.assignee, a.assigned_by) == (triager, supervisor)
    moved = report.events.get(action="assigned")  # the event routing writes, with the person and no rule
    assert (moved.field, moved.from_value, moved.to_value, moved.actor, moved.note) == (
        "team", "", "roads", supervisor, "set by hand")
    services.report_assign(report=report, staff=supervisor, assignee=None, team=None, expected_version=2)
    report.refresh_from_db()
    assert report.team is None and not ReportAssignment.objects.filter(report=report).exists()
    assert [(e.from_value, e.to_value) for e in report.events.filter(action="assign").order_by("id")] == [
        ("", "tina"), ("tina", "")]
    assert report.events.filter(action="assigned").order_by("id").last().from_value == "roads"


@pytest.mark.django_db
def test_assigning_what_is_already_assigned_changes_nothing(supervisor, triager, make_report):
    roads = Team.objects.create(slug="roads", name="Roads")
    report = services.report_assign(report=make_report(), staff=supervisor, assignee=triager, team=roads,
                                    expected_version=1)
    again = services.report_assign(report=report, staff=supervisor, assignee=triager, team=roads, expected_version=2)
    assert again.version == 2 and report.events.filter(action__in=["assign", "assigned"]).count() == 2


@pytest.mark.django_db
def test_an_inactive_team_is_refused_and_nothing_changes(supervisor, make_report):
    closed = Team.objects.create(slug="old-roads", name="Old roads", active=False)
    report = make_report()
    with pytest.raises(ValidationError, match="not active"):
        services.report_assign(report=report, staff=supervisor, assignee=None, team=closed, expected_version=1)
    report.refresh_from_db()
    assert report.team is None and report.version == 1 and not report.events.exclude(action="created").exists()


@pytest.mark.django_db
def test_bulk_verify_skips_conflicts_and_changes_the_rest(triager, make_report):
    a, b, c = make_report(), make_report(lat=51.6), make_report(lat=51.7)
    result = services.report_bulk_verify(selection=[(a.pk, 1), (b.pk, 99), (c.pk, 1)], staff=triager,
                                         category=category("pothole"))
    assert sorted(result.done) == sorted([a.service_request_id, c.service_request_id])
    assert result.conflicts == [b.service_request_id]
    assert Report.objects.filter(final_category__slug="pothole").count() == 2


@pytest.mark.django_db
def test_bulk_status_through_the_queue_form(client, triager, make_report):
    a, b = make_report(predicted="pothole"), make_report(lat=51.6)
    client.force_login(triager)
    response = client.post(reverse("console:bulk"), {"action": "status", "status": "rejected", "reason": "private_land",
                                                     "selected": [f"{a.pk}:1", f"{b.pk}:1"]})
    assert response.status_code == 302
    assert set(Report.objects.values_list("status", "reject_reason")) == {(S.REJECTED, "private_land")}


@pytest.mark.django_db
def test_category_search_accepts_a_typed_name_and_explains_a_typo(client, triager, make_report):
    report = make_report(predicted="pothole")
    url = reverse("console:verify", args=[report.service_request_id])
    client.force_login(triager)
    response = client.post(url, {"version": 1, "category": "pot hole"})
    assert response.status_code == 400 and "Unknown category" in response.content.decode()
    assert client.post(url, {"version": 1, "category": "street light"}).status_code == 302
    report.refresh_from_db()
    assert report.final_category.slug == "streetlight"


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "not-a-reason"])
def test_rejecting_needs_a_canned_reason(triager, make_report, reason):
    report = make_report(predicted="no_issue")
    with pytest.raises(ValidationError, match="Rejecting needs a reason"):
        services.report_set_status(report=report, staff=triager, status=S.REJECTED, expected_version=1, reason=reason)
    report.refresh_from_db()
    assert (report.status, report.version) == (S.NEEDS_REVIEW, 1) and not report.events.filter(action="reject")


@pytest.mark.django_db
def test_reject_reason_is_recorded_and_shown_to_the_citizen(client, triager, make_report):
    report = make_report(predicted="fly_tipping")
    report = services.report_set_status(report=report, staff=triager, status=S.REJECTED, expected_version=1,
                                        reason="already_fixed")
    assert report.reject_reason == "already_fixed"
    assert "reason: already_fixed (Already fixed)" in report.events.get(action="reject").note
    assert report.events.get(action="status").note == "Already fixed"
    assert [e.note for e in public_notes(report)] == ["This has already been fixed."]
    [item] = client.get(f"/open311/v2/requests/{report.service_request_id}.json").json()
    assert (item["status"], item["status_notes"]) == ("closed", "This has already been fixed.")


@pytest.mark.django_db
def test_reopening_clears_the_reject_reason(supervisor, make_report):
    report = make_report(predicted="no_issue")
    report = services.report_set_status(report=report, staff=supervisor, status=S.REJECTED, expected_version=1,
                                        reason="not_council")
    report = services.report_set_status(report=report, staff=supervisor, status=S.NEEDS_REVIEW,
                                        expected_version=report.version)
    assert (report.status, report.reject_reason) == (S.NEEDS_REVIEW, "")


@pytest.mark.django_db
def test_bulk_over_reports_a_triager_may_not_reopen_changes_nothing(triager, make_report):
    open_one, fixed = make_report(status=S.TRIAGED), make_report(lat=51.6, status=S.FIXED)
    with pytest.raises(ValidationError) as exc:
        services.report_bulk_set_status(selection=[(open_one.pk, 1), (fixed.pk, 1)], staff=triager,
                                        status=S.IN_PROGRESS)
    assert fixed.service_request_id in str(exc.value) and open_one.service_request_id not in str(exc.value)
    assert "reopen_report" in str(exc.value)
    assert set(Report.objects.values_list("status", "version")) == {(S.TRIAGED, 1), (S.FIXED, 1)}
    assert not Report.objects.filter(events__actor=triager).exists()


@pytest.mark.django_db
def test_bulk_over_a_mix_through_the_queue_names_the_refused_reports_instead_of_a_403(client, triager, make_report):
    open_one, fixed = make_report(status=S.TRIAGED), make_report(lat=51.6, status=S.FIXED)
    client.force_login(triager)
    response = client.post(reverse("console:bulk"), {"action": "status", "status": "in_progress",
                                                     "selected": [f"{open_one.pk}:1", f"{fixed.pk}:1"]}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Nothing was changed. Refused for {fixed.service_request_id}" in page
    assert set(Report.objects.values_list("status", flat=True)) == {S.TRIAGED, S.FIXED}


@pytest.mark.django_db
def test_bulk_with_the_permission_still_changes_the_allowed_and_lists_the_refused_moves(supervisor, make_report):
    triaged, fixed, review = (make_report(status=S.TRIAGED), make_report(lat=51.6, status=S.FIXED),
                              make_report(lat=51.7, status=S.NEEDS_REVIEW))
    result = services.report_bulk_set_status(selection=[(triaged.pk, 1), (fixed.pk, 1), (review.pk, 1)],
                                             staff=supervisor, status=S.IN_PROGRESS)
    assert sorted(result.done) == sorted([triaged.service_request_id, fixed.service_request_id])
    assert "Cannot go from needs_review to in_progress" in result.errors[review.service_request_id]
    fixed.refresh_from_db()
    assert (fixed.status, fixed.version) == (S.IN_PROGRESS, 2)
    assert fixed.events.get(action="reopen").from_value == S.FIXED


@pytest.mark.django_db
def test_every_staff_status_change_goes_through_the_workflow_and_is_recorded(supervisor, make_report):
    report = make_report(predicted="pothole")
    report = services.report_verify(report=report, staff=supervisor, category=category("pothole"), expected_version=1)
    report = services.report_set_status(report=report, staff=supervisor, status=S.FIXED,
                                        expected_version=report.version)
    report = services.report_set_status(report=report, staff=supervisor, status=S.TRIAGED,
                                        expected_version=report.version, note="came back")
    moves = list(report.events.filter(field="status").exclude(action="created")
                 .values_list("action", "from_value", "to_value"))
    assert moves == [("status", S.NEEDS_REVIEW, S.TRIAGED), ("status", S.TRIAGED, S.FIXED),
                     ("reopen", S.FIXED, S.TRIAGED)]
    assert report.version == 4


@pytest.mark.django_db
def test_a_merged_copy_of_the_same_photo_cannot_be_reopened_beside_its_original(supervisor, make_report):
    # Copies a duplicate-photo race made are merged by a migration (reports 0005); reopening one would
    # leave two originals of one photo (the unique index refuses it: a 500 before this check).
    original = make_report(status=S.IN_PROGRESS)
    dup = services.report_mark_duplicate(report=make_report(lat=51.50002), original=original, staff=supervisor,
                                         expected_version=1)
    Report.objects.filter(pk=dup.pk).update(photo_sha256=original.photo_sha256)
    dup.refresh_from_db()
    with pytest.raises(ValidationError, match=f"same photo as {original.service_request_id}"):
        services.report_set_status(report=dup, staff=supervisor, status=S.NEEDS_REVIEW, expected_version=dup.version)
    dup.refresh_from_db()
    assert (dup.status, dup.duplicate_of) == (S.DUPLICATE, original)
