"""Classifier status for /healthz."""
from . import registry
from .models import ModelVersion
from .services import has_ever_had_a_model


def classifier_health() -> dict:
    """ok: a model serves; no_model: cold start (staff triage by hand); degraded: an
    active model exists but cannot serve, so reports wait as pending."""
    classifier = registry.active_classifier()
    state = registry.status()
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("version", flat=True).first()
    body = {"active_model": active, "serving_model": state["loaded_version"]}
    if classifier is not None and state["error"] is None and state["loaded_version"] == active:
        body.update(classifier="ok", providers=classifier.providers)
    elif active is None and not has_ever_had_a_model():
        body["classifier"] = "no_model"
    else:
        body.update(classifier="degraded", error=state["error"] or "no active model can be served")
    return body
