"""Classifier status for /healthz (replaced by the registry-aware version with the classifier issue)."""


def classifier_health() -> dict:
    return {"classifier": "no_model", "active_model": None}
