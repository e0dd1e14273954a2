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
    # Every file of the directory as registered, relative path -> sha256: what a machine that
    # fetches it from object storage (MODEL_STORAGE=s3, classifier.model_files) verifies.
    files = models.JSONField(default=dict, blank=True)
    classes = models.JSONField()  # class slugs in output order
    metrics = models.JSONField(default=dict, blank=True)  # holdout metrics from training/retrain
    metadata = models.JSONField(default=dict, blank=True)  # metadata.json as registered
    parent_version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    promotion_report = models.JSONField(null=True, blank=True)  # why retrain promoted/rejected it
    # Auto-triage thresholds derived from its holdout predictions at its last activation, with the
    # evidence per category (classifier.quality.thresholds_for_model); {} before any activation.
    thresholds = models.JSONField(default=dict, blank=True)
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

    # Private. Imported: an oriented, metadata-free JPEG. Converted from an old import's report
    # (migration 0005): that report's original; the export cleans it.
    photo = models.FileField(storage=private_storage, max_length=255)
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
        QUALITY = "quality", "Live quality guard"
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


class SpotCheck(models.Model):
    """A report the model was confident enough to auto-triage, sent to the review queue
    instead (a deterministic SPOT_CHECK_SHARE of them), so that staff decisions keep
    measuring live precision (classifier.quality)."""

    report = models.OneToOneField("reports.Report", on_delete=models.CASCADE, related_name="spot_check")
    model_version = models.CharField(max_length=64)
    category = models.ForeignKey("reports.Category", on_delete=models.PROTECT, related_name="+")  # the prediction
    probability = models.FloatField()
    share = models.FloatField()  # SPOT_CHECK_SHARE when it was drawn
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["model_version", "category"])]

    def __str__(self) -> str:
        return f"spot check of report {self.report_id} ({self.category_id} at {self.probability:.2f})"


class AutoTriageChange(models.Model):
    """Audit trail of every change to a category's auto-triage: a threshold derived at a
    promotion, a supervisor's override, the live quality guard switching it off, and it
    coming back on. Append-only. A threshold of None means "does not auto-triage"."""

    class Kind(models.TextChoices):
        DERIVED = "derived", "Derived from the holdout at a promotion"
        OVERRIDE = "override", "Supervisor override"
        SWITCHED_OFF = "switched_off", "Switched off by the live quality guard"
        SWITCHED_ON = "switched_on", "Back on after a promotion"

    category = models.ForeignKey("reports.Category", on_delete=models.PROTECT, related_name="+")
    model_version = models.CharField(max_length=64, blank=True)  # the active model then
    kind = models.CharField(max_length=16, choices=Kind.choices)
    old_threshold = models.FloatField(null=True, blank=True)
    new_threshold = models.FloatField(null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_label = models.CharField(max_length=64, blank=True)  # "system", "quality guard" when no user
    reason = models.CharField(max_length=500)
    evidence = models.JSONField(default=dict, blank=True)  # the numbers behind it
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model_version", "kind"])]

    def __str__(self) -> str:
        return f"{self.category_id}: {self.kind} {self.old_threshold} -> {self.new_threshold}"


class AutoTriageSwitchOff(models.Model):
    """The live quality guard switched auto-triage of a category off: when, why, the
    numbers, and the retrain it queued. Open (switched_on_at empty) until the next
    activation of a model; while open, routing never auto-triages the category.
    At most one open row per category (partial unique index)."""

    category = models.ForeignKey("reports.Category", on_delete=models.PROTECT, related_name="+")
    model_version = models.CharField(max_length=64)  # the model whose live precision fell short
    reason = models.CharField(max_length=500)
    # decisions, right, precision, wilson_low, wilson_high, target_precision, confidence, since
    evidence = models.JSONField(default=dict)
    retrain_run = models.ForeignKey(RetrainRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    switched_off_at = models.DateTimeField(auto_now_add=True)
    switched_on_at = models.DateTimeField(null=True, blank=True)
    switched_on_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-switched_off_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["category"], condition=Q(switched_on_at__isnull=True),
                                    name="one_open_switch_off_per_category"),
        ]

    def __str__(self) -> str:
        state = "open" if self.switched_on_at is None else "closed"
        return f"auto-triage of {self.category_id} off ({self.model_version}, {state})"


class WorkerHeartbeat(models.Model):
    """A task worker's last sign of life, written by the worker itself every
    WORKER_HEARTBEAT_SECONDS (classifier.worker). Every process reads the same rows, so
    /healthz and the task lease agree on which workers are alive. The worker also records
    which model its process serves and why the active one could not load, if it could not."""

    worker_id = models.CharField(max_length=64, unique=True)
    backend = models.CharField(max_length=32)  # settings.TASKS alias the worker serves
    # Queues of that backend it takes tasks from ("*" resolved to the backend's QUEUES), so /healthz
    # can tell a classifier worker ("classify") from a task worker ("default").
    queues = models.JSONField(default=list, blank=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    serving_model = models.CharField(max_length=64, blank=True)  # version loaded in that process
    model_error = models.TextField(blank=True)  # why the active version could not be loaded

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"worker {self.worker_id} ({self.backend}) on {self.hostname}:{self.pid}"
