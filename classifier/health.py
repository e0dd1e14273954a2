"""Classifier status for /healthz."""
from . import registry
from .models import AutoTriageSwitchOff, ModelVersion
from .services import has_ever_had_a_model


def classifier_health() -> dict:
    """ok: a model serves; no_model: cold start (staff triage by hand); degraded: an
    active model exists but cannot serve, so reports wait as pending.

    model_quality: "degraded" while the live quality guard has auto-triage of some
    category switched off (listed in auto_triage_off), else "ok". It does not change
    the overall status: reports are still taken and reviewed by staff."""
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
    off = sorted(AutoTriageSwitchOff.objects.filter(switched_on_at__isnull=True).values_list("category__slug",
                                                                                           flat=True))
    body["model_quality"] = "degraded" if off else "ok"
    if off:
        body["auto_triage_off"] = off
    return body
