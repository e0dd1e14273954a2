"""Registry and classification operations (the Django side of the classifier)."""
from __future__ import annotations

import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from PIL import Image

from inference.modelformat import MODEL_FILE
from reports import photos as report_photos
from reports.categories import NO_ISSUE
from reports.models import Category, Report, ReportEvent
from reports.routing import route, spot_check_drawn
from reports.assignment import assign_team
from reports.services import record_event, report_transition
from reports.storage import delete_files
from reports.workflow import By

from . import model_files, registry
from .models import ModelVersion, TrainingExample
from .onnx import ModelError, load_model
from .quality import auto_triage_on_activation, auto_triage_policy, spot_check_record

logger = logging.getLogger(__name__)


def model_register(*, source_dir: Path, metrics: dict | None = None) -> ModelVersion:
    """Validate a model directory and copy it into MODEL_ROOT as a candidate (and, with
    MODEL_STORAGE=s3, into object storage, before the row commits: other machines fetch it
    from there, classifier.model_files). All or nothing: a failure leaves neither files,
    objects nor a row.

    Checks: metadata and sha256 (load_model), every class is an active
    category or `no_issue`, and a smoke inference on a generated image.
    """
    try:
        loaded = load_model(source_dir)
    except ModelError as exc:
        raise ValidationError(f"Invalid model directory {source_dir}: {exc}") from exc
    known = set(Category.objects.filter(active=True).values_list("slug", flat=True)) | {NO_ISSUE}
    unknown = [c for c in loaded.classes if c not in known]
    if unknown:
        raise ValidationError(
            f"Model classes {unknown} are not active categories; known: {', '.join(sorted(known))}")
    if ModelVersion.objects.filter(version=loaded.version).exists():
        raise ValidationError(f"Model version {loaded.version} is already registered.")

    target = settings.MODEL_ROOT / loaded.version
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source_dir, target, dirs_exist_ok=False)
    files: dict[str, str] = {}
    try:
        classifier = registry.backend_class()(target, registry.backend_options())
        probe = io.BytesIO()
        Image.new("RGB", (320, 240), (128, 128, 128)).save(probe, "JPEG")
        probabilities = [p for _, p in classifier.predict([probe.getvalue()])[0].top_k]
        if not probabilities or not all(0.0 <= p <= 1.0 for p in probabilities):
            raise ValidationError(f"Smoke inference gave no valid probabilities: {probabilities}")
        files = model_files.file_digests(target)
        if files.get(MODEL_FILE) != loaded.metadata["onnx_sha256"]:  # changed since it was validated
            raise ValidationError(f"{target / MODEL_FILE} is not the model validated in {source_dir} "
                                  "(changed while being registered).")
        model_files.upload(directory=target, path=loaded.version, files=files)
        with transaction.atomic():
            return ModelVersion.objects.create(
                version=loaded.version, path=loaded.version, sha256=loaded.metadata["onnx_sha256"], files=files,
                classes=list(loaded.classes), metadata=loaded.metadata,
                metrics=metrics if metrics is not None else loaded.metadata.get("metrics", {}),
                parent_version=loaded.metadata.get("parent_version") or "",
            )
    except Exception:
        shutil.rmtree(target, ignore_errors=True)
        model_files.remove(path=loaded.version, files=files)
        raise


def model_activate(*, version: str, user=None) -> ModelVersion:
    """Make `version` the one active model; the previous one is retired.
    Its auto-triage thresholds are derived afresh and applied, and categories the
    quality guard switched off come back on (classifier.quality), in the same
    transaction. Pending reports are classified after commit."""
    with transaction.atomic():
        target = ModelVersion.objects.select_for_update().filter(version=version).first()
        if target is None:
            raise ValidationError(f"Unknown model version {version!r}.")
        if target.status == ModelVersion.Status.ACTIVE:
            return target
        # Validate before switching: a model that cannot load never becomes active.
        try:
            registry.load(target)
        except Exception as exc:
            raise ValidationError(f"Model {version} cannot be loaded: {exc}") from exc
        ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.ACTIVE).update(
            status=ModelVersion.Status.RETIRED)
        target.status = ModelVersion.Status.ACTIVE
        target.activated_at = timezone.now()
        target.activated_by = user
        target.save(update_fields=["status", "activated_at", "activated_by"])
        auto_triage_on_activation(model=target, user=user)
        transaction.on_commit(_enqueue_pending)
    logger.info("model %s activated by %s", version, user or "system")
    return target


def model_rollback(*, user=None) -> ModelVersion:
    """Reactivate the most recently active earlier version; the current one is marked rejected."""
    with transaction.atomic():
        current = ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.ACTIVE).first()
        previous = (ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED, activated_at__isnull=False)
                    .order_by("-activated_at").first())
        if previous is None:
            raise ValidationError("There is no earlier model to roll back to.")
        if current is not None:
            current.status = ModelVersion.Status.REJECTED
            current.save(update_fields=["status"])
        return model_activate(version=previous.version, user=user)


def _enqueue_pending() -> None:
    from .tasks import classify_pending_task, classify_soon

    try:
        classify_soon(classify_pending_task)
    except Exception:
        logger.exception("could not enqueue classify_pending; run `manage.py classify_pending`")


def has_ever_had_a_model() -> bool:
    return ModelVersion.objects.filter(activated_at__isnull=False).exists()


def classify_reports(report_ids: list[int]) -> int:
    """Classify the given reports that are still pending; returns how many were classified.

    The model runs outside any transaction, so no row is locked meanwhile (staff may act on
    the report). Then the rows are locked with SKIP LOCKED and written only if still pending:
    idempotent, and a report another worker or a person got to first is left as it is.
    With no model ever activated (cold start) reports go to needs review;
    with an active model that cannot load they stay pending.
    """
    classifier = registry.active_classifier()
    if classifier is None:
        if has_ever_had_a_model():
            return 0  # degraded: wait as pending
        return _route_without_model(report_ids)
    candidates = list(Report.objects.filter(pk__in=report_ids, status=Report.Status.PENDING).order_by("pk")
                      .only("pk", "photo_original"))
    if not candidates:
        return 0
    photos = [r.photo_original.storage.open(r.photo_original.name).read() for r in candidates]
    predictions = dict(zip((r.pk for r in candidates), predict_photos(classifier, photos)))
    categories = {c.slug: c for c in Category.objects.filter(active=True)}
    policy = auto_triage_policy()
    with transaction.atomic():
        reports = list(Report.objects.select_for_update(skip_locked=True, of=("self",))
                       .filter(pk__in=predictions, status=Report.Status.PENDING)
                       .select_related("citizen_category").order_by("pk"))
        now = timezone.now()
        for report in reports:
            prediction = predictions[report.pk]
            report.classified_at = now
            if prediction is None:  # this photo cannot be classified by any model: a person must look
                report_transition(report=report, to=Report.Status.NEEDS_REVIEW, by=By.CLASSIFIER,
                                  actor_label="system", action=ReportEvent.Action.ROUTED, fields=["classified_at"],
                                  note="the model could not read this photo")
                continue
            decision = route(top_k=prediction.top_k, thresholds=policy.thresholds,
                             default_threshold=settings.DEFAULT_AUTO_TRIAGE_THRESHOLD,
                             citizen_slug=report.citizen_category.slug if report.citizen_category else None,
                             auto_off=policy.off,
                             spot_check=spot_check_drawn(report_id=report.pk, share=settings.SPOT_CHECK_SHARE),
                             unknown=prediction.unknown)
            report.predicted_label = decision.predicted_slug
            report.predicted_category = categories.get(decision.predicted_slug)
            report.predicted_probability = decision.probability
            report.predicted_top_k = [[s, round(p, 6)] for s, p in prediction.top_k]
            report.model_version = prediction.model_version
            report.predicted_unknown = prediction.unknown
            report.unknown_score = prediction.unknown_score
            report.auto_triaged = decision.auto_triaged
            report.possibly_not_issue = decision.possibly_not_issue
            report.citizen_model_disagree = decision.citizen_model_disagree
            report_transition(
                report=report, to=decision.status, by=By.CLASSIFIER, actor_label=f"model:{prediction.model_version}",
                action=ReportEvent.Action.CLASSIFIED,
                fields=["predicted_label", "predicted_category", "predicted_probability", "predicted_top_k",
                        "model_version", "predicted_unknown", "unknown_score", "classified_at", "auto_triaged",
                        "possibly_not_issue", "citizen_model_disagree"],
                note=json.dumps({"top_k": report.predicted_top_k, "unknown": prediction.unknown,
                                 "unknown_score": prediction.unknown_score}))
            if report.status == Report.Status.TRIAGED:
                assign_team(report=report, actor_label="routing")
            if decision.spot_check:
                spot_check_record(report=report, category=report.predicted_category,
                                  probability=decision.probability, model_version=prediction.model_version)
                record_event(report=report, actor_label="system", action=ReportEvent.Action.SPOT_CHECK,
                             note=f"spot check: would have been auto-triaged as {decision.predicted_slug} "
                                  f"({decision.probability:.2f}); sent for review to measure live precision")
    return len(reports)


def predict_photos(classifier, photos: list[bytes]) -> list:
    """The classifier worker's prediction of one batch of originals (also what deploy/gpu-check.sh times).

    Batch prediction; if the batch fails, photo by photo, so one photo the
    decoder rejects cannot hold a whole batch pending forever. A photo that
    fails on its own gives None. A failure of every photo is re-raised
    (the model, not the photos, is broken: retry later)."""
    try:
        return classifier.predict(photos)
    except Exception:
        logger.exception("batch of %d failed; classifying one by one", len(photos))
    results, errors = [], []
    for photo in photos:
        try:
            results.append(classifier.predict([photo])[0])
        except Exception as exc:
            errors.append(exc)
            results.append(None)
    if len(errors) == len(photos):
        raise errors[0]
    return results


def _route_without_model(report_ids: list[int]) -> int:
    """Cold start: no model yet, so staff triage by hand (their labels train the first model)."""
    with transaction.atomic():
        reports = list(Report.objects.select_for_update(skip_locked=True)
                       .filter(pk__in=report_ids, status=Report.Status.PENDING))
        for report in reports:
            report_transition(report=report, to=Report.Status.NEEDS_REVIEW, by=By.CLASSIFIER, actor_label="system",
                              action=ReportEvent.Action.ROUTED, note="no model yet")
    return len(reports)


def pending_report_ids(limit: int | None = None) -> list[int]:
    qs = Report.objects.filter(status=Report.Status.PENDING).order_by("created_at").values_list("pk", flat=True)
    return list(qs[:limit] if limit else qs)


def classify_pending(batch_size: int | None = None) -> int:
    """Classify every pending report, a batch at a time. Returns how many were classified."""
    batch_size = batch_size or settings.CLASSIFIER_BATCH_SIZE
    total = 0
    while ids := pending_report_ids(limit=batch_size):
        done = classify_reports(ids)
        if done == 0:  # no model can serve (degraded) or another worker holds them
            break
        total += done
    return total


@dataclass(frozen=True)
class ExampleIntake:
    example: TrainingExample | None  # None when the photo is already a report
    created: bool
    reason: str = ""  # why nothing was created


def training_example_create(*, photo: bytes, label: str, source: str = TrainingExample.Source.BOOTSTRAP,
                            origin: str = "") -> ExampleIntake:
    """Store a labelled photo as training data only: an oriented, metadata-free JPEG in
    private storage and a TrainingExample row. Never creates a Report, so the photo
    appears in no public feed, console queue or map.

    Raises ValidationError (unknown label or source, or a photo `reports.photos`
    refuses) before anything is written. A photo is stored once, keyed by the
    SHA-256 of its bytes: one that is already an example, or already a report (whose
    staff label trains anyway), gives created=False.
    """
    if source not in TrainingExample.Source.values:
        raise ValidationError({"source": f"Unknown source {source!r}; choose {' or '.join(TrainingExample.Source.values)}."})
    if label != NO_ISSUE and not Category.objects.filter(slug=label).exists():
        raise ValidationError({"label": f"{label!r} is not a category slug or {NO_ISSUE}."})
    info = report_photos.read_photo(photo)
    existing = TrainingExample.objects.filter(photo_sha256=info.sha256).first()
    if existing is not None:
        return ExampleIntake(example=existing, created=False, reason="already a training example")
    if Report.objects.filter(photo_sha256=info.sha256).exists():
        return ExampleIntake(example=None, created=False, reason="already a report")
    example = TrainingExample(photo_sha256=info.sha256, label=label, source=source, origin=origin[-500:])
    example.full_clean(exclude=["photo"])
    data = report_photos.training_copy(info)
    try:
        with transaction.atomic():
            example.photo.save(f"training/{info.sha256[:2]}/{info.sha256}.jpg", ContentFile(data), save=False)
            example.save()
    except BaseException:
        if example.photo.name:  # an object storage that just refused may refuse this too
            delete_files([(example.photo.storage, example.photo.name)])
        raise
    return ExampleIntake(example=example, created=True)
