import numpy as np
import pytest

from training.metrics import classification_report, ece, ece_floor, fit_temperature, softmax


def test_report_on_a_known_confusion_matrix():
    labels = np.array([0, 0, 1, 1, 1, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 2]] * 0.9 + 0.1 / 3
    report = classification_report(labels, probs, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert report["macro_f1"] == pytest.approx(np.mean([2 / 3, 2 / 3, 2 / 3]))
    assert report["n_images"] == 6


def test_ece_is_zero_when_confidence_matches_accuracy():
    probs = np.array([[0.75, 0.25]] * 4)
    assert ece(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    assert ece(probs, np.array([0, 0, 0, 0])) == pytest.approx(0.25)


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 4))
    labels = np.array([rng.choice(4, p=p) for p in softmax(logits, 2.0)])
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.1)


def test_ece_floor_is_the_sampling_noise_of_a_calibrated_model():
    certain = np.eye(3)[[0, 1, 2, 1]]
    assert ece_floor(certain) == 0.0  # labels drawn from one-hot probabilities always match them
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=2000)
    floors = [ece_floor(probs[:n], draws=100) for n in (100, 2000)]
    assert 0.0 < floors[1] < floors[0] < 0.2  # noise, shrinking as the holdout grows


def test_fit_temperature_leaves_an_all_correct_set_alone():
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    assert fit_temperature(logits, np.array([0, 1, 0])) == 1.0  # the NLL would run T to the grid's edge
