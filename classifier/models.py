"""The model registry: which ONNX model versions exist and which one serves."""
from django.conf import settings
from django.db import models
from django.db.models import Q


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


class TrainingSplit(models.Model):
    """Which side of the frozen holdout a verified report is on. Assigned once, never changed."""

    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        HOLDOUT = "holdout", "Holdout"

    report = models.OneToOneField("reports.Report", on_delete=models.CASCADE, related_name="training_split")
    split = models.CharField(max_length=8, choices=Split.choices)
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["split"])]

    def __str__(self) -> str:
        return f"{self.report_id}: {self.split}"
