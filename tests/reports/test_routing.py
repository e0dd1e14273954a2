from reports.routing import route, spot_check_drawn

THRESHOLDS = {"pothole": 0.85, "graffiti": 0.6, "fly_tipping": 0.85}


def decide(top_k, citizen=None):
    return route(top_k=top_k, thresholds=THRESHOLDS, default_threshold=0.85, citizen_slug=citizen)


def test_confident_category_is_auto_triaged():
    d = decide([("pothole", 0.9), ("graffiti", 0.05)])
    assert (d.status, d.auto_triaged, d.predicted_slug) == ("triaged", True, "pothole")


def test_below_the_category_threshold_needs_review():
    assert decide([("pothole", 0.84)]).status == "needs_review"


def test_thresholds_are_per_category():
    assert decide([("graffiti", 0.61)]).status == "triaged"


def test_confident_no_issue_is_flagged_never_rejected():
    d = decide([("no_issue", 0.99)])
    assert (d.status, d.possibly_not_issue, d.auto_triaged) == ("needs_review", True, False)


def test_confident_disagreement_with_citizen_is_flagged_for_staff():
    d = decide([("graffiti", 0.95)], citizen="pothole")
    assert (d.status, d.citizen_model_disagree) == ("needs_review", True)
    assert decide([("graffiti", 0.95)], citizen="graffiti").status == "triaged"
    assert not decide([("graffiti", 0.3)], citizen="pothole").citizen_model_disagree


def test_class_that_is_not_an_active_category_is_never_auto_triaged():
    assert decide([("streetlight", 0.99)]).status == "needs_review"


def test_a_category_switched_off_never_auto_triages():
    d = route(top_k=[("pothole", 0.99)], thresholds=THRESHOLDS, default_threshold=0.85, citizen_slug=None,
              auto_off={"pothole"})
    assert (d.status, d.auto_triaged, d.spot_check) == ("needs_review", False, False)


def test_a_drawn_spot_check_goes_to_review_marked():
    d = route(top_k=[("pothole", 0.99)], thresholds=THRESHOLDS, default_threshold=0.85, citizen_slug=None,
              spot_check=True)
    assert (d.status, d.auto_triaged, d.spot_check) == ("needs_review", False, True)
    unsure = route(top_k=[("pothole", 0.5)], thresholds=THRESHOLDS, default_threshold=0.85, citizen_slug=None,
                   spot_check=True)
    assert not unsure.spot_check  # only would-be auto-triages are spot checks: the rest are reviewed anyway


def test_spot_checks_are_deterministic_per_report_and_about_the_share():
    drawn = [i for i in range(1, 20001) if spot_check_drawn(report_id=i, share=0.05)]
    assert 0.045 <= len(drawn) / 20000 <= 0.055
    assert drawn == [i for i in range(1, 20001) if spot_check_drawn(report_id=i, share=0.05)]  # same draw again
    assert set(drawn) <= {i for i in range(1, 20001) if spot_check_drawn(report_id=i, share=0.10)}  # nested shares
    assert not any(spot_check_drawn(report_id=i, share=0) for i in range(1, 1000))
    assert all(spot_check_drawn(report_id=i, share=1) for i in range(1, 1000))
