from classifier.routing import route

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
