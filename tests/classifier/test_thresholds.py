"""classifier/thresholds.py: derived thresholds against hand-computed examples."""
import json
import math

import pytest

from classifier.thresholds import (CANDIDATES, clopper_pearson_lower, derive_thresholds, read_predictions,
                                   wilson_interval)


def photo(truth: str, **probabilities: float):
    return truth, probabilities


def test_clopper_pearson_lower_bound_matches_closed_forms():
    alpha = 0.05
    assert clopper_pearson_lower(10, 10, alpha) == pytest.approx(alpha ** (1 / 10))  # 0.7411
    # 1 of 2: P(X >= 1) = 1 - (1 - p)^2 = alpha  =>  p = 1 - sqrt(1 - alpha)
    assert clopper_pearson_lower(1, 2, alpha) == pytest.approx(1 - math.sqrt(1 - alpha), abs=1e-9)
    assert clopper_pearson_lower(0, 5, alpha) == 0.0
    # The bound is where the binomial upper tail equals alpha: 10 of 12 at p = 0.7 gives
    # 66*0.7^10*0.3^2 + 12*0.7^11*0.3 + 0.7^12 = 0.2528 > 0.05, so the bound lies below 0.7.
    assert 0.40 < clopper_pearson_lower(10, 12, alpha) < 0.7


def test_wilson_interval_hand_computed():
    low, high = wilson_interval(0, 10, 0.95)
    z = 1.959964
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(z * z / (10 + z * z), abs=1e-6)  # 0.2775
    assert wilson_interval(10, 10, 0.95)[1] == pytest.approx(1.0)
    low, high = wilson_interval(8, 10, 0.95)  # centre (8 + 1.92) / 13.84, half 1.96 * 1.6 / 13.84
    assert (low, high) == (pytest.approx(0.4902, abs=1e-3), pytest.approx(0.9433, abs=1e-3))


def test_derivation_against_a_hand_computed_example():
    # Two candidates at 95 % confidence, tested from the highest down, each at alpha = 0.05 (fixed sequence).
    holdout = ([photo("pothole", pothole=0.95, graffiti=0.05)] * 10
               + [photo("graffiti", pothole=0.6, graffiti=0.4)] * 2  # confident-ish and wrong
               + [photo("graffiti", graffiti=0.99, pothole=0.01)] * 2
               + [photo("pothole", no_issue=0.8, pothole=0.2)])  # predicted no_issue: not a category here
    result = derive_thresholds(predictions=holdout, labels=["pothole", "graffiti"], target_precision=0.7,
                               confidence=0.95, candidates=(0.5, 0.9))
    pothole = result["pothole"]
    # t = 0.9: 10 of 10 right, bound 0.05 ** (1/10) = 0.7411 >= 0.7: passes.
    # t = 0.5: 10 of 12 right, and P(X >= 10 | 12, 0.7) = 0.2528 > 0.05: fails, so 0.9 is the threshold.
    assert pothole.threshold == 0.9 and (pothole.n, pothole.correct, pothole.precision) == (10, 10, 1.0)
    assert pothole.lower_bound == pytest.approx(0.05 ** 0.1)
    assert (pothole.predicted, pothole.support) == (12, 11)
    graffiti = result["graffiti"]
    # 2 of 2 at either candidate: bound 0.05 ** 0.5 = 0.224 < 0.7: too few photos, no threshold.
    assert graffiti.threshold is None and graffiti.at == 0.5
    assert (graffiti.n, graffiti.correct, graffiti.support) == (2, 2, 4)
    assert graffiti.lower_bound == pytest.approx(0.05 ** 0.5)


def test_the_sequence_stops_at_the_first_failure():
    # 0.9 passes (10 of 10), 0.7 fails (10 of 13: P(X >= 10 | 13, 0.7) = 0.42), 0.5 would pass on its own
    # (60 of 63) but is never tested: testing further after a failure would void the guarantee.
    holdout = ([photo("pothole", pothole=0.95, graffiti=0.05)] * 10
               + [photo("graffiti", pothole=0.75, graffiti=0.25)] * 3
               + [photo("pothole", pothole=0.55, graffiti=0.45)] * 50)
    result = derive_thresholds(predictions=holdout, labels=["pothole"], target_precision=0.7, confidence=0.95,
                               candidates=(0.5, 0.7, 0.9))
    assert result["pothole"].threshold == 0.9


def test_a_category_with_too_few_holdout_photos_gets_no_threshold():
    # Even every photo right: at 97 % / 95 % it takes 99 (0.05 ** (1 / n) >= 0.97).
    perfect = [photo("pothole", pothole=0.99, graffiti=0.01)] * 95
    assert derive_thresholds(predictions=perfect, labels=["pothole"], target_precision=0.97,
                             confidence=0.95)["pothole"].threshold is None
    enough = [photo("pothole", pothole=0.99, graffiti=0.01)] * 100
    evidence = derive_thresholds(predictions=enough, labels=["pothole"], target_precision=0.97,
                                 confidence=0.95)["pothole"]
    assert evidence.threshold == min(CANDIDATES) and evidence.lower_bound >= 0.97


def test_unlikely_settings_are_refused():
    with pytest.raises(ValueError, match="confidence"):
        derive_thresholds(predictions=[], labels=["pothole"], target_precision=0.9, confidence=1.0)
    with pytest.raises(ValueError, match="target precision"):
        derive_thresholds(predictions=[], labels=["pothole"], target_precision=0, confidence=0.95)


def test_read_predictions_names_the_bad_line(tmp_path):
    path = tmp_path / "p.jsonl"
    good = {"path": "a.jpg", "label": "pothole", "source": "local", "probabilities": {"pothole": 0.9, "graffiti": 0.1}}
    path.write_text(json.dumps(good) + "\n\n" + '{"label": "pothole"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:3"):
        read_predictions(path)
    path.write_text(json.dumps(good) + "\n")
    assert read_predictions(path) == [("pothole", {"pothole": 0.9, "graffiti": 0.1})]
