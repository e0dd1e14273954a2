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
