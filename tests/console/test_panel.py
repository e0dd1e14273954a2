"""Model panel: quality of the active model against staff labels since its activation."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from console import panel, services
from reports.models import Report

from .conftest import category

S = Report.Status


@pytest.fixture
def active_model(supervisor):
    from classifier.models import ModelVersion

    ModelVersion.objects.create(version="v0", path="v0", sha256="0" * 64, classes=["pothole"], status="retired",
                                activated_at=timezone.now() - dt.timedelta(days=30))
    return ModelVersion.objects.create(
        version="v1", path="v1", sha256="1" * 64, classes=["pothole", "graffiti", "no_issue"], status="active",
        metrics={"macro_f1": 0.81, "accuracy": 0.86}, activated_by=supervisor,
        activated_at=timezone.now() - dt.timedelta(minutes=5))



def decide(report, staff, decision: str) -> None:
    """A triager's decision on a fresh report: a category slug, or "reject" (not a council matter)."""
    if decision == "reject":
        services.report_set_status(report=report, staff=staff, status=S.REJECTED, expected_version=1,
                                   reason="not_council")
    else:
        services.report_verify(report=report, staff=staff, category=category(decision), expected_version=1)

@pytest.mark.django_db
def test_quality_counts_rejections_as_no_issue(triager, make_report, active_model):
    for predicted, decision in [("pothole", "pothole"), ("pothole", "pothole"), ("pothole", "graffiti"),
                                ("graffiti", "graffiti"), ("no_issue", "reject"), ("pothole", "reject")]:
        decide(make_report(predicted=predicted, model_version="v1"), triager, decision)
    make_report(predicted="pothole", model_version="v1")  # not labelled yet: not counted
    q = panel.model_quality(version="v1", since=active_model.activated_at)
    scores = {s.label: s for s in q["scores"]}
    assert q["total"] == 6 and q["accuracy"] == pytest.approx(4 / 6)
    assert scores["pothole"].precision == pytest.approx(2 / 4) and scores["pothole"].recall == 1.0
    assert scores["graffiti"].precision == 1.0 and scores["graffiti"].recall == pytest.approx(1 / 2)
    assert scores["no_issue"].support == 2 and scores["no_issue"].recall == pytest.approx(1 / 2)
    assert dict(q["matrix"])["graffiti"] == [1, 1, 0]  # rows: staff label; columns: pothole, graffiti, no_issue


@pytest.mark.django_db
def test_auto_triage_accuracy_comes_from_spot_checks(triager, make_report, active_model):
    right = make_report(predicted="pothole", model_version="v1", status=S.TRIAGED, auto_triaged=True)
    wrong = make_report(predicted="pothole", model_version="v1", status=S.TRIAGED, auto_triaged=True)
    make_report(predicted="pothole", model_version="v1", status=S.TRIAGED, auto_triaged=True)
    make_report(predicted="pothole", model_version="v1")
    services.report_verify(report=right, staff=triager, category=category("pothole"), expected_version=1)
    services.report_verify(report=wrong, staff=triager, category=category("graffiti"), expected_version=1)
    stats = panel.auto_triage_stats(version="v1")
    assert (stats["classified"], stats["auto"], stats["checked"], stats["correct"]) == (4, 3, 2, 1)
    assert stats["rate"] == 0.75 and stats["accuracy"] == 0.5


@pytest.mark.django_db
def test_panel_shows_the_active_model_and_supervisor_controls(client, supervisor, triager, active_model):
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    assert 'id="active-version">v1<' in html and "by sam" in html
    assert "Roll back to the previous model" in html and 'name="threshold"' in html
    client.force_login(triager)
    html = client.get(reverse("console:model")).content.decode()
    assert "Roll back" not in html and 'name="threshold"' not in html


@pytest.mark.django_db
def test_supervisor_rollback_reactivates_the_previous_model(client, supervisor, active_model, monkeypatch):
    from classifier import registry
    from classifier.models import ModelVersion

    monkeypatch.setattr(registry, "load", lambda version: None)  # no ONNX files in this test
    client.force_login(supervisor)
    assert client.post(reverse("console:rollback")).status_code == 302
    assert ModelVersion.objects.get(status="active").version == "v0"
    assert ModelVersion.objects.get(version="v1").status == "rejected"


@pytest.mark.django_db
def test_panel_lists_retrain_runs_with_why_who_and_outcome(client, supervisor, triager, make_report, active_model,
                                                           settings):
    from classifier.models import RetrainRun

    settings.RETRAIN_AFTER_CORRECTIONS = 10
    RetrainRun.objects.create(
        trigger="corrections", reason="12 staff corrections of v0 since activation (threshold 10)",
        active_version="v0", state="done", outcome="promoted", candidate_version="v1",
        report={"outcome": "promoted", "decision": {"promote": True, "reasons": [
            "macro-F1 0.810 vs active 0.790: within 0.01"]}})
    RetrainRun.objects.create(trigger="nightly", reason="nightly timer (manage.py retrain)", active_version="v1",
                              state="done", outcome="skipped",
                              report={"outcome": "skipped", "reason": "3 new verified labels; need 20"})
    RetrainRun.objects.create(trigger="staff", reason="Retrain now by sam", requested_by=supervisor,
                              active_version="v1", state="pending")
    for slug in ("graffiti", "graffiti", "pothole"):  # two corrections of v1's "pothole", one agreement
        r = make_report(predicted="pothole", model_version="v1")
        services.report_verify(report=r, staff=triager, category=category(slug), expected_version=1)
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    assert "Staff corrections</strong>: 12 staff corrections of v0 since activation (threshold 10)" in html
    assert "<strong>promoted</strong> v1" in html and "macro-F1 0.810 vs active 0.790: within 0.01" in html
    assert "Nightly timer</strong>: nightly timer (manage.py retrain)" in html and "3 new verified labels; need 20" in html
    assert "Retrain now (staff)</strong>: Retrain now by sam" in html and "<td>sam</td>" in html
    assert 'id="open-retrain">A retrain is <strong>pending</strong>' in html
    assert "<strong>2 of 10</strong> corrections since activation" in html
    assert "Graffiti: 2 of 2 verified corrected (100%)" in html


@pytest.mark.django_db
def test_panel_shows_holdout_macro_f1_per_source_when_the_retrain_recorded_it(client, supervisor, active_model):
    active_model.promotion_report = {"outcome": "promoted", "candidate_holdout_by_source": {
        "bootstrap": {"macro_f1": 0.978, "n_images": 300}, "local": {"macro_f1": 0.64, "n_images": 12}}}
    active_model.save(update_fields=["promotion_report"])
    assert [(h["source"], h["macro_f1"]) for h in panel.holdout_by_source(active_model)] == [
        ("local", 0.64), ("bootstrap", 0.978)]  # the council's own photos first
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    assert "this council&#x27;s photos: <strong>0.640</strong> <small>(12 photos)</small>" in html
    assert "bootstrap photos: <strong>0.978</strong> <small>(300 photos)</small>" in html


@pytest.mark.django_db
def test_panel_without_per_source_numbers_shows_none(client, supervisor, active_model):
    client.force_login(supervisor)
    assert 'id="holdout-by-source"' not in client.get(reverse("console:model")).content.decode()


@pytest.mark.django_db
def test_a_threshold_override_writes_who_when_old_new_and_why(supervisor, active_model):
    from classifier.models import AutoTriageChange

    services.category_set_threshold(category=category("pothole"), staff=supervisor, threshold=0.7,
                                    reason="backlog after the storm")
    change = AutoTriageChange.objects.get()
    assert (change.kind, change.category.slug, change.actor, change.old_threshold, change.new_threshold) == (
        "override", "pothole", supervisor, 0.85, 0.7)
    assert change.reason == "backlog after the storm" and change.model_version == "v1" and change.created_at


@pytest.mark.django_db
def test_panel_shows_derived_thresholds_with_evidence_the_guarantee_and_the_audit_trail(
        client, supervisor, active_model):
    from classifier.models import AutoTriageChange

    active_model.thresholds = {
        "derived": True, "target_precision": 0.97, "confidence": 0.95, "n_holdout": 240,
        "computed_at": "2026-12-01T10:00:00+00:00", "per_class": {
            "pothole": {"label": "pothole", "threshold": 0.8, "at": 0.8, "n": 190, "correct": 190, "precision": 1.0,
                        "lower_bound": 0.9731, "predicted": 200, "support": 195},
            "graffiti": {"label": "graffiti", "threshold": None, "at": 0.5, "n": 40, "correct": 40,
                         "precision": 1.0, "lower_bound": 0.8786, "predicted": 40, "support": 41}}}
    active_model.save(update_fields=["thresholds"])
    AutoTriageChange.objects.create(category=category("pothole"), model_version="v1", kind="derived",
                                    old_threshold=0.85, new_threshold=0.8, actor_label="system",
                                    reason="derived: 190 of 190 holdout photos right")
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    assert "with 95% confidence, at least 97% of its auto-triaged photos are right" in html
    assert "Derived 2026-12-01T10:00 for v1 from 240 holdout photos" in html
    pothole = html.split('id="threshold-pothole"')[1].split("</tr>")[0]
    assert "190 of 190 holdout photos right at p &gt;= 0.80 (100%; 95% lower bound 0.973)" in pothole
    assert ">on<" in pothole
    graffiti = html.split('id="threshold-graffiti"')[1].split("</tr>")[0]
    assert "needs more verified photos" in graffiti and "40 of 40 holdout photos right at p &gt;= 0.50" in graffiti
    assert 'id="threshold-changes"' in html and "Derived from the holdout at a promotion" in html


@pytest.mark.django_db
def test_panel_banner_when_the_quality_guard_switched_a_category_off(client, supervisor, active_model):
    from classifier.models import AutoTriageSwitchOff, RetrainRun

    run = RetrainRun.objects.create(trigger="quality", reason="live quality guard: Pothole: 0 of 10",
                                    active_version="v1", state="pending")
    AutoTriageSwitchOff.objects.create(
        category=category("pothole"), model_version="v1", retrain_run=run,
        reason="Pothole: 0 of 10 staff decisions on auto-triaged or spot-checked reports agreed with v1",
        evidence={"decisions": 10, "right": 0})
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    banner = html.split('id="quality-banner"')[1].split("</div>")[0]
    assert "Auto-triage switched itself off</strong> for Pothole" in banner
    assert "0 of 10 staff decisions" in banner and f"Retrain run {run.pk} queued (pending)" in banner
    pothole = html.split('id="threshold-pothole"')[1].split("</tr>")[0]
    assert "switched off by the live quality guard" in pothole


# A new class needs evidence: progress on the panel ---------------------------------------------

@pytest.mark.django_db
def test_panel_lists_a_category_the_model_does_not_know_with_its_progress(client, supervisor, triager, make_report,
                                                                         active_model, settings):
    settings.MIN_PHOTOS_NEW_CLASS = 10
    r = make_report(predicted="pothole", model_version="v1")
    services.report_verify(report=r, staff=triager, category=category("streetlight"), expected_version=1)
    rows = {n.category.slug: n for n in panel.new_categories(active=active_model)}
    assert "pothole" not in rows and "graffiti" not in rows  # v1 knows them
    assert (rows["streetlight"].photos, rows["streetlight"].train, rows["streetlight"].ready) == (1, 1, False)
    assert rows["fly_tipping"].photos == 0
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    line = html.split('id="new-category-streetlight"')[1].split("</li>")[0]
    assert "Street light: 1 of 10 verified photos" in line and "enough" not in line
    assert 'id="new-category-pothole"' not in html


@pytest.mark.django_db
def test_a_new_category_with_enough_photos_is_shown_ready_with_the_holdout_on_top(supervisor, triager, make_report,
                                                                                   active_model, settings):
    settings.MIN_PHOTOS_NEW_CLASS, settings.HOLDOUT_SHARE, settings.HOLDOUT_MIN_PER_LABEL = 3, 0.2, 5
    for _ in range(5):
        r = make_report(predicted="pothole", model_version="v1")
        services.report_verify(report=r, staff=triager, category=category("streetlight"), expected_version=1)
    (row,) = [n for n in panel.new_categories(active=active_model) if n.category.slug == "streetlight"]
    assert (row.photos, row.train, row.holdout, row.ready) == (5, 4, 1, True)


# Drift per week and the confusion matrix ------------------------------------------------------

def berlin(*args) -> dt.datetime:
    import zoneinfo

    return dt.datetime(*args, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))


@pytest.fixture
def drift_reports(make_report, settings):
    """Hand-built decisions across weeks, in a time zone an hour off UTC. The current week is
    2026-W48 (Monday 23 Nov); W46 starts Monday 9 Nov."""
    from classifier.models import SpotCheck

    settings.TIME_ZONE = "Europe/Berlin"
    w46 = berlin(2026, 11, 10, 10, 0)  # Tuesday of W46

    def made(predicted, *, final=None, status=S.TRIAGED, verified=w46, classified=w46, unknown=False, spot=None,
             **fields):
        decided = final is not None or status == S.REJECTED
        r = make_report(predicted=predicted, status=status, classified_at=classified, predicted_unknown=unknown,
                        final_category=category(final) if final else None,
                        verified_at=verified if decided else None, **fields)
        if spot:
            SpotCheck.objects.create(report=r, model_version="v1", category=category(spot), probability=0.9, share=0.05)
        return r

    made("pothole", final="pothole")
    made("pothole", final="graffiti", unknown=True)  # a correction
    made("no_issue", status=S.REJECTED)  # agreement
    made("graffiti", status=S.REJECTED)  # a correction
    made(None, final="pothole", classified=None)  # never classified: in no series
    made("pothole", final="pothole", status=S.DUPLICATE)  # classified, but a duplicate is no decision
    made("pothole", final="pothole", spot="pothole")  # spot checks: right, right, wrong (a correction), undecided
    made("graffiti", final="graffiti", spot="graffiti")
    made("pothole", final="fly_tipping", spot="pothole")
    made("pothole", status=S.NEEDS_REVIEW, spot="pothole", unknown=True)
    # Given Monday 00:30 in Berlin (Sunday 23:30 UTC): W48's; classified the Sunday before: W47's.
    made("pothole", final="graffiti", verified=berlin(2026, 11, 23, 0, 30), classified=berlin(2026, 11, 22, 20, 0))
    made("pothole", final="graffiti", verified=berlin(2026, 8, 25), classified=berlin(2026, 8, 25))  # 13 weeks ago
    return berlin(2026, 11, 25, 12, 0)  # now: Wednesday of W48


@pytest.mark.django_db
def test_drift_series_per_iso_week_gives_the_hand_computed_rates(drift_reports):
    weeks = panel.drift_weeks(now=drift_reports)
    assert len(weeks) == 12 and (weeks[0].label, weeks[-1].label) == ("2026-W37", "2026-W48")
    assert weeks[0].start == dt.date(2026, 9, 7) and all(w.start.weekday() == 0 for w in weeks)
    by = {w.label: w for w in weeks}
    w46, w47, w48 = by["2026-W46"], by["2026-W47"], by["2026-W48"]
    assert (w46.corrected, w46.verified) == (3, 7) and w46.correction_rate == pytest.approx(3 / 7)
    assert (w46.spot_right, w46.spot_decided) == (2, 3) and w46.spot_precision == pytest.approx(2 / 3)
    assert (w46.unknown, w46.classified) == (2, 9) and w46.unknown_share == pytest.approx(2 / 9)
    assert (w47.verified, w47.classified, w47.unknown_share, w47.correction_rate) == (0, 1, 0.0, None)
    assert (w48.corrected, w48.verified, w48.classified, w48.spot_precision) == (1, 1, 0, None)
    assert all(w.verified == w.classified == 0 for w in weeks if w.label not in ("2026-W46", "2026-W47", "2026-W48"))


@pytest.mark.django_db
def test_panel_plots_drift_as_inline_svg_with_activations_and_a_table(client, supervisor, drift_reports,
                                                                       active_model, monkeypatch):
    import xml.etree.ElementTree as ET

    from classifier.models import ModelVersion

    ModelVersion.objects.filter(version="v1").update(activated_at=berlin(2026, 11, 18, 9, 0))
    ModelVersion.objects.filter(version="v0").update(activated_at=berlin(2026, 3, 1))  # before the plot
    monkeypatch.setattr(panel.timezone, "now", lambda: drift_reports)
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    svg = ET.fromstring(html[html.index('<svg xmlns="http://www.w3.org/2000/svg" id="drift-chart"'):]
                        .split("</svg>")[0] + "</svg>")
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert [p.get("class") for p in svg.iterfind(".//svg:path", ns)] == [
        "series-correction", "series-spot-check", "series-unknown"]
    assert [m.find("svg:title", ns).text for m in svg.iterfind(".//svg:line[@class='marker']", ns)] == [
        "v1 on 2026-11-18"]
    assert "2026-W37 to 2026-W48" in svg.find("svg:desc", ns).text
    row = html.split('id="drift-2026-W46"')[1].split("</tr>")[0]
    assert "3 of 7 (43%)" in row and "2 of 3 (67%)" in row and "2 of 9 (22%)" in row


@pytest.mark.django_db
def test_confusion_matrix_counts_live_decisions_since_activation(client, supervisor, triager, make_report,
                                                                 active_model):
    before = active_model.activated_at - dt.timedelta(days=1)
    for predicted, decision in [("pothole", "pothole"), ("pothole", "pothole"), ("pothole", "graffiti"),
                                ("graffiti", "pothole"), ("no_issue", "reject"), ("graffiti", "reject")]:
        decide(make_report(predicted=predicted, model_version="v1"), triager, decision)
    make_report(predicted="pothole", model_version="v1", final_category=category("graffiti"), verified_at=before)
    make_report(predicted="pothole", model_version="v0", final_category=category("graffiti"),
                verified_at=timezone.now())  # another version's prediction
    make_report(predicted="graffiti", model_version="v1")  # not decided yet
    q = panel.model_quality(version="v1", since=active_model.activated_at)
    assert q["labels"] == ["pothole", "graffiti", "no_issue"] and q["total"] == 6
    assert q["matrix"] == [("pothole", [2, 1, 0]), ("graffiti", [1, 0, 0]), ("no_issue", [0, 1, 1])]
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    table = html.split('id="confusion-matrix"')[1].split("</table>")[0]
    rows = [[cell.split(">")[-1] for cell in tr.split("</td>")[:-1]] for tr in table.split("<tr>")[2:]]
    assert rows == [["2", "1", "0"], ["1", "0", "0"], ["0", "1", "1"]]


@pytest.mark.django_db
def test_panel_says_no_model_can_be_promoted_while_the_data_is_below_the_minimums(client, supervisor, triager,
                                                                                   make_report, active_model, settings):
    settings.RETRAIN_MIN_LABELS_PER_CLASS, settings.RETRAIN_MIN_HOLDOUT = 10, 20
    for _ in range(3):
        r = make_report(predicted="pothole", model_version="v1")
        services.report_verify(report=r, staff=triager, category=category("pothole"), expected_version=1)
    client.force_login(supervisor)
    html = client.get(reverse("console:model")).content.decode()
    box = html.split('id="retrain-shortfalls"')[1].split("</div>")[0]
    assert "each class needs 10 verified photos" in box and "pothole has 3" in box
    assert "at least 20 holdout photos" in box
