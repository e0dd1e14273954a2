"""System checks: a misconfigured backend is an error; a missing model file is reported at start-up."""
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from inference.modelformat import MODEL_FILE
from inference.runtime import RuntimeSetupError, check_single_runtime


@checks.register()
def check_classifier(app_configs=None, **kwargs):
    from . import registry

    problems = []
    try:
        registry.backend_class()
    except ImproperlyConfigured as exc:
        problems.append(checks.Error(str(exc), hint="Set CLASSIFIER_BACKEND.", id="classifier.E001"))
    try:
        check_single_runtime()
    except RuntimeSetupError as exc:
        problems.append(checks.Error(str(exc), id="classifier.E002"))
    try:
        from .models import ModelVersion

        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    except Exception:  # database not migrated or unreachable yet: other checks say so
        return problems
    # With MODEL_STORAGE=s3 a machine that lacks the files fetches them when it first loads the model.
    fetched_on_demand = settings.MODEL_STORAGE == "s3"
    if active is not None and not fetched_on_demand and not (settings.MODEL_ROOT / active.path / MODEL_FILE).is_file():
        problems.append(checks.Warning(
            f"The active model {active.version} has no {MODEL_FILE} under {settings.MODEL_ROOT / active.path}; "
            "reports will wait as pending.",
            hint="Restore the files, or `manage.py rollback` / `manage.py activate_model VERSION`.",
            id="classifier.W001",
        ))
    return problems
