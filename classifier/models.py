"""The model registry: which ONNX model versions exist and which one serves."""
from django.conf import settings
from django.db import models
from django.db.models import Q

from reports.models import private_storage


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        REJECTED = "rejected", "Rejected"

    version = models.CharField(max_length=64, unique=True)
    path = models.CharField(max_length=255)  # directory, relative to settings.MODEL_ROOT
    sha256 = models.CharField(max_length=64)  # of model.onnx
    classes = models.JSONField()  # class slugs in output order
    metrics = models.JSONField(default=dict, blank=True)  # holdout metrics from training/retrain
    metadata = models.JSONField(default=dict, blank=True)  # metadata.json as registered
    parent_version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    promotion_report = models.JSONField(null=True, blank=True)  # why retrain promoted/rejected it
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="active"), name="one_active_model"),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.status})"

    @property
    def directory(self):
        return settings.MODEL_ROOT / self.path


class TrainingExample(models.Model):
    """A labelled photo that is training data only: never a report, never in a public or
    console list. Created by `manage.py import_labelled_photos` (classifier.services)."""

    class Source(models.TextChoices):
        # Same words as the training manifest's `source` column (training.data.SOURCES).
        BOOTSTRAP = "bootstrap", "Bootstrap (public or curated photos)"
        LOCAL = "local", "Local (this council's own photos)"

    photo = models.FileField(storage=private_storage, max_length=255)  # oriented, metadata-free JPEG
    photo_sha256 = models.CharField(max_length=64, unique=True)  # of the file as imported (dedupe key)
    label = models.CharField(max_length=64)  # category slug or "no_issue"
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.BOOTSTRAP)
    origin = models.CharField(max_length=500, blank=True)  # where it came from, e.g. the imported file's path
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["source", "label"])]

    def __str__(self) -> str:
        return f"example {self.pk} ({self.source}: {self.label})"


class TrainingSplit(models.Model):
    """Which side of the frozen holdout a verified report or a training example is on.
    Assigned once, never changed."""

    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        HOLDOUT = "holdout", "Holdout"

    report = models.OneToOneField("reports.Report", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="training_split")
    example = models.OneToOneField(TrainingExample, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="training_split")
    split = models.CharField(max_length=8, choices=Split.choices)
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["split"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(report__isnull=False, example__isnull=True) | Q(report__isnull=True, example__isnull=False),
                name="training_split_report_xor_example",
            ),
        ]

    def __str__(self) -> str:
        subject = f"report {self.report_id}" if self.report_id else f"example {self.example_id}"
        return f"{subject}: {self.split}"


class RetrainRun(models.Model):
    """One retraining request and what came of it: why it ran, who asked, the outcome.

    At most one row is pending or running at a time (partial unique index), besides
    the advisory lock `classifier.retrain` takes, so a request can never be queued
    twice. Created by `classifier.runs.retrain_request` (queued: staff, corrections)
    or by `classifier.retrain.retrain` itself (the nightly `manage.py retrain`).
    """

    class Trigger(models.TextChoices):
        NIGHTLY = "nightly", "Nightly timer"
        STAFF = "staff", "Retrain now (staff)"
        CORRECTIONS = "corrections", "Staff corrections"
        OTHER = "other", "Other"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    OPEN_STATES = (State.PENDING, State.RUNNING)

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    reason = models.CharField(max_length=500)  # in words, for the model panel
    # Which evidence triggers this run used up (e.g. ["corrections", "share:pothole"]) and their counts.
    evidence = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    active_version = models.CharField(max_length=64, blank=True)  # active model when requested
    force = models.BooleanField(default=False)  # train even with fewer than RETRAIN_MIN_NEW_LABELS new labels
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    outcome = models.CharField(max_length=16, blank=True)  # promoted / rejected / candidate / skipped / failed
    candidate_version = models.CharField(max_length=64, blank=True)
    report = models.JSONField(null=True, blank=True)  # retrain()'s report (report.json), gate reasons included
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)  # django-tasks result id of the queued run
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["active_version", "trigger"])]
        constraints = [
            models.UniqueConstraint(
                models.Value(True), condition=Q(state__in=["pending", "running"]), name="one_open_retrain_run",
                violation_error_message="A retrain is already pending or running."),
        ]

    def __str__(self) -> str:
        return f"retrain {self.pk} ({self.trigger}, {self.state})"

    @property
    def gate_reasons(self) -> list[str]:
        """Why the run ended as it did: the promotion gate's reasons, else the skip reason or the error."""
        report = self.report or {}
        reasons = list((report.get("decision") or {}).get("reasons") or [])
        if not reasons and report.get("reason"):
            reasons = [report["reason"]]
        if not reasons and self.error:
            reasons = [self.error]
        return reasons
