"""Reports, their categories and their audit trail."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, GistIndex
from django.core.files.storage import storages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Coalesce
from django.utils.translation import get_language

from . import workflow
from .categories import NO_ISSUE, NO_ISSUE_NAME


def private_storage():
    return storages["private"]


def public_storage():
    return storages["public"]


def new_reference() -> str:
    """Public reference: unguessable, short enough to read out on the phone."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
    return "".join(secrets.choice(alphabet) for _ in range(10))


def _welsh() -> bool:
    return (get_language() or "").startswith("cy")


class Category(models.Model):
    """A kind of issue staff handle; `slug` is also the Open311 service_code."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # Welsh (cy) for citizens who read the site in Welsh; blank falls back to the English.
    name_cy = models.CharField("name (Welsh)", max_length=100, blank=True)
    description_cy = models.TextField("description (Welsh)", blank=True)
    group = models.CharField(max_length=100, blank=True)
    keywords = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    active = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=100)
    # Model probability at or above which a prediction of this category is
    # auto-triaged (still reviewable). 0-1.
    auto_triage_threshold = models.FloatField(
        default=0.85, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    # Response targets in working days (reports.targets): the public is told the fix target.
    triage_target_days = models.PositiveSmallIntegerField(
        default=2, validators=[MaxValueValidator(250)], help_text="Working days to triage a report.")
    fix_target_days = models.PositiveSmallIntegerField(
        default=10, validators=[MaxValueValidator(250)], help_text="Working days to fix a report.")

    class Meta:
        ordering = ["order", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        """The name in the active language (Welsh where set), for citizens' pages and Open311."""
        return self.name_cy if self.name_cy and _welsh() else self.name

    @property
    def display_description(self) -> str:
        return self.description_cy if self.description_cy and _welsh() else self.description


class Team(models.Model):
    """Who fixes a report: a council department, a contractor, or an outside body (National
    Highways, the water company) that the council forwards reports to."""

    class Kind(models.TextChoices):
        DEPARTMENT = "department", "Council department"
        CONTRACTOR = "contractor", "Contractor"
        OUTSIDE_BODY = "outside_body", "Outside body"

    class SendMethod(models.TextChoices):
        EMAIL = "email", "Email"
        OPEN311 = "open311", "Open311 (not yet sent)"  # reserved: a push to a back office, later

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.DEPARTMENT)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")
    email = models.EmailField(blank=True, help_text="Where reports are forwarded (required for an outside body).")
    send_method = models.CharField(max_length=16, choices=SendMethod.choices, default=SendMethod.EMAIL)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_outside_body(self) -> bool:
        return self.kind == self.Kind.OUTSIDE_BODY

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.is_outside_body and self.send_method == self.SendMethod.EMAIL and not self.email:
            raise ValidationError({"email": "An outside body needs a contact email to forward reports to."})


class Area(models.Model):
    """A named polygon (a ward, a park, a trunk road corridor), e.g. imported from GeoJSON
    with `manage.py import_areas`; routing rules (and later area alerts) refer to it."""

    name = models.CharField(max_length=200, unique=True)
    geometry = models.MultiPolygonField(srid=4326)  # longitude/latitude
    source = models.CharField(max_length=255, blank=True)  # the file it came from
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Place(models.Model):
    """One entry of the local gazetteer (`manage.py import_gazetteer`, from OS Open Names or a council's
    own list): what the citizen form's address search finds and the street reverse lookup names.
    No outside service is asked."""

    class Kind(models.TextChoices):
        STREET = "street", "Street"
        PLACE = "place", "Place"
        POSTCODE = "postcode", "Postcode"
        LANDMARK = "landmark", "Landmark"

    ref = models.CharField(max_length=120, unique=True)  # the source's ID, so a re-import updates the row
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    locality = models.CharField(max_length=200, blank=True)  # town or district: tells same names apart
    point = models.PointField(geography=True, srid=4326)  # longitude/latitude
    source = models.CharField(max_length=255, blank=True)  # the file it came from

    class Meta:
        ordering = ["name", "locality"]
        indexes = [GinIndex(fields=["name"], opclasses=["gin_trgm_ops"], name="place_name_trgm_idx")]

    def __str__(self) -> str:
        return f"{self.name}, {self.locality}" if self.locality else self.name


class RoutingRule(models.Model):
    """Reports of `category` (any if blank) inside `area` (anywhere if blank) go to `team`.
    reports.assignment.match_rule says which rule wins."""

    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    area = models.ForeignKey(Area, null=True, blank=True, on_delete=models.PROTECT, related_name="rules")
    priority = models.PositiveIntegerField(default=100, help_text="Lower wins.")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="rules")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        what = self.category.name if self.category_id else "Any category"
        where = f" in {self.area.name}" if self.area_id else ""
        return f"rule #{self.pk}: {what}{where} -> {self.team.name}"


def staff_labelled_q(prefix: str = "") -> Q:
    """Reports whose staff decision is a training label, across a relation with `prefix`
    (e.g. "report__"): a decision staff recorded (verified_at) that is a category or a
    rejection (NO_ISSUE). Duplicates are left out: the same problem photographed twice
    would straddle the holdout, and a duplicate's label is its original's."""
    return (Q(**{f"{prefix}verified_at__isnull": False})
            & (Q(**{f"{prefix}final_category__isnull": False}) | Q(**{f"{prefix}status": Report.Status.REJECTED}))
            & ~Q(**{f"{prefix}status": Report.Status.DUPLICATE}))


class ReportQuerySet(QuerySet):
    """The answers to "which category is this report?", each written once in SQL (the
    properties on Report say the same of one loaded row)."""

    def with_current_category(self) -> ReportQuerySet:
        """`current_category_id`, the staff view (Report.category): staff's decision, else the
        model's prediction, else the citizen's choice."""
        return self.annotate(current_category_id=Coalesce(
            "final_category_id", "predicted_category_id", "citizen_category_id", output_field=models.BigIntegerField()))

    def with_public_category(self) -> ReportQuerySet:
        """`public_category_id`, what the public sees (Report.public_category): staff's decision,
        else the citizen's choice, else the model's prediction unless it flags the photo unknown."""
        model = Case(When(predicted_unknown=False, then=F("predicted_category_id")), default=None)
        return self.annotate(public_category_id=Coalesce(
            "final_category_id", "citizen_category_id", model, output_field=models.BigIntegerField()))

    def current_category_in(self, categories: QuerySet[Category]) -> ReportQuerySet:
        return self.with_current_category().filter(current_category_id__in=categories.values("pk"))

    def public_category_in(self, categories: QuerySet[Category]) -> ReportQuerySet:
        return self.with_public_category().filter(public_category_id__in=categories.values("pk"))

    def staff_labelled(self) -> ReportQuerySet:
        """Reports whose staff decision trains the model (staff_labelled_q), with that label as
        `training_label`: the final category's slug, or NO_ISSUE for a rejection. The one
        definition the training export, the retrain triggers, the quality guard and the model
        panel share."""
        return self.filter(staff_labelled_q()).annotate(training_label=Case(
            When(status=Report.Status.REJECTED, then=Value(NO_ISSUE)), default=F("final_category__slug"),
            output_field=models.CharField()))


class Report(models.Model):
    # The lifecycle (statuses, moves, open/closed) is reports.workflow's; written only by
    # reports.services.report_transition.
    Status = workflow.Status
    CLOSED_STATUSES = workflow.CLOSED

    class LocationSource(models.TextChoices):
        CLIENT = "client", "Client coordinates"
        DEVICE_GPS = "device_gps", "Device GPS"
        MAP_PIN = "map_pin", "Map pin"
        EXIF = "exif", "Photo EXIF"
        SEARCH = "search", "Address search"

    class Channel(models.TextChoices):
        WEB = "web", "Web form"
        API = "api", "REST API"
        OPEN311 = "open311", "Open311"
        IMPORT = "import", "Import"

    service_request_id = models.CharField(max_length=16, unique=True, default=new_reference, editable=False)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.PENDING)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WEB)

    location = models.PointField(geography=True, srid=4326)
    location_source = models.CharField(max_length=16, choices=LocationSource.choices)
    exif_location = models.PointField(geography=True, srid=4326, null=True, blank=True)
    exif_distance_m = models.FloatField(null=True, blank=True)  # metres, location <-> EXIF point
    address = models.CharField(max_length=255, blank=True)
    description = models.TextField(max_length=2000, blank=True)

    # Three separate labels: what the citizen said, what the model said, what staff decided.
    citizen_category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    predicted_label = models.CharField(max_length=64, blank=True)  # category slug or "no_issue"
    predicted_category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    predicted_probability = models.FloatField(null=True, blank=True)
    predicted_top_k = models.JSONField(null=True, blank=True)  # [[slug, probability], ...]
    model_version = models.CharField(max_length=64, blank=True)
    classified_at = models.DateTimeField(null=True, blank=True)
    auto_triaged = models.BooleanField(default=False)
    possibly_not_issue = models.BooleanField(default=False)
    citizen_model_disagree = models.BooleanField(default=False)
    # Open set: the photo is unlike every class the model knows (set by the classifier
    # from the backbone's features); such a prediction is never a suggestion. Staff only.
    predicted_unknown = models.BooleanField(default=False)
    unknown_score = models.FloatField(null=True, blank=True)  # higher = less like the training photos

    final_category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    # Why staff rejected it (console.services.REJECT_REASONS key); blank unless rejected.
    # Kept on the row so training can tell "not an issue" photos from e.g. private land.
    reject_reason = models.CharField(max_length=32, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    # Who fixes it and the rule that chose them (none when staff chose by hand); written only by
    # reports.assignment (assign_team, team_set_by_hand).
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    routing_rule = models.ForeignKey(
        RoutingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Private: never in a public representation.
    reporter_name = models.CharField(max_length=100, blank=True)
    reporter_email = models.EmailField(blank=True)

    photo_original = models.FileField(storage=private_storage, max_length=255)
    photo_public = models.ImageField(storage=public_storage, max_length=255)
    photo_thumbnail = models.ImageField(storage=public_storage, max_length=255)
    photo_format = models.CharField(max_length=8)  # JPEG, PNG, WEBP, HEIF
    photo_width = models.PositiveIntegerField()
    photo_height = models.PositiveIntegerField()
    photo_sha256 = models.CharField(max_length=64, db_index=True)
    photo_phash = models.CharField(max_length=16)  # 64-bit difference hash, hex
    media_url = models.URLField(max_length=500, blank=True)  # Open311 client's URL; never fetched
    # The language the reporter used at intake (settings.LANGUAGES code): their e-mails are written in it.
    language = models.CharField(max_length=8, blank=True, default="")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped by every staff change; a stale version means someone else acted first.
    version = models.PositiveIntegerField(default=1)
    # Response targets (reports.targets.report_set_due_dates): from created_at and the category.
    triage_due_at = models.DateTimeField(null=True, blank=True)
    fix_due_at = models.DateTimeField(null=True, blank=True)
    # Set by report_transition: the first triage, and the move into a closed status (cleared on reopen).
    triaged_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["created_at"]),
            models.Index(fields=["final_category", "status"]),
            models.Index(fields=["predicted_category", "status"]),
            models.Index(fields=["status", "predicted_probability", "created_at"], name="report_queue_idx"),
            # Map boxes compare location::geometry (reports.selectors.in_bbox); this serves them.
            GistIndex(Cast("location", models.PointField(srid=4326)), name="report_location_geom_idx"),
        ]
        # GiST on location (geography) comes with the PointField (spatial_index=True).
        constraints = [
            models.CheckConstraint(
                condition=Q(predicted_probability__isnull=True)
                | Q(predicted_probability__gte=0, predicted_probability__lte=1),
                name="report_probability_range",
            ),
            # One report per photo: concurrent uploads of the same bytes cannot both insert;
            # report_create turns the loser into a ReportSupporter. Staff-merged duplicates are exempt.
            models.UniqueConstraint(
                fields=["photo_sha256"], condition=Q(duplicate_of__isnull=True), name="report_one_original_per_photo",
            ),
        ]

    def __str__(self) -> str:
        return self.service_request_id

    @property
    def is_open(self) -> bool:
        return workflow.is_open(self.status)

    @property
    def category(self) -> Category | None:
        """The staff view (ReportQuerySet.with_current_category): staff's, else the model's, else the citizen's."""
        return self.final_category or self.predicted_category or self.citizen_category

    @property
    def public_category(self) -> Category | None:
        """What the public sees (ReportQuerySet.with_public_category): staff's decision, else the
        citizen's choice, else the model's suggestion unless it flags the photo unknown."""
        model = None if self.predicted_unknown else self.predicted_category
        return self.final_category or self.citizen_category or model

    @property
    def predicted_name(self) -> str:
        """The model's label as staff read it: the category's name, else NO_ISSUE's name (or the raw label)."""
        if self.predicted_category is not None:
            return self.predicted_category.name
        return NO_ISSUE_NAME if self.predicted_label == NO_ISSUE else self.predicted_label


class ReportEvent(models.Model):
    """Append-only audit trail: one row per state or label change (UPDATE is refused in SQL)."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        CLASSIFIED = "classified", "Classified"
        ROUTED = "routed", "Routed"
        SPOT_CHECK = "spot_check", "Spot check"
        CITIZEN_LABEL = "citizen_label", "Citizen's label"
        VERIFY = "verify", "Verified"
        CORRECT = "correct", "Corrected"
        REJECT = "reject", "Rejected"
        STATUS = "status", "Status changed"
        REOPEN = "reopen", "Reopened"
        DUPLICATE = "duplicate", "Marked duplicate"
        NOTE = "note", "Note"
        ASSIGN = "assign", "Assigned"
        ASSIGNED = "assigned", "Assigned to team"
        ALSO_REPORTED = "also_reported", "Also reported"
        CITIZEN_UPDATE = "citizen_update", "Reporter's update"
        CONTACT_ERASED = "contact_erased", "Contact details erased"  # reports.retention; never the values

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=100)  # "citizen", "model:<version>", "api:<key name>", username
    action = models.CharField(max_length=32, choices=Action.choices)
    field = models.CharField(max_length=32, blank=True)
    from_value = models.CharField(max_length=255, blank=True)
    to_value = models.CharField(max_length=255, blank=True)
    note = models.TextField(blank=True)
    public = models.BooleanField(default=False)  # public notes appear in Open311 status_notes
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["report", "created_at"])]

    def __str__(self) -> str:
        return f"{self.report_id} {self.action} {self.from_value}->{self.to_value}"


class ReportSupporter(models.Model):
    """Someone who sent a photo already reported ("also reported"): kept so they can be
    told about progress too. Private, like the reporter's own contact details."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="supporters")
    channel = models.CharField(max_length=16, choices=Report.Channel.choices)
    reporter_name = models.CharField(max_length=100, blank=True)
    reporter_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.report_id} also reported via {self.channel}"


class ReportUpdate(models.Model):
    """Something the reporter added through their private link: text and an optional photo
    (the same pipeline as a report's: the original private, public copies metadata-free).
    Shown on the public timeline; its `citizen_update` event is the audit row."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="updates")
    text = models.TextField(max_length=2000, blank=True)
    photo_original = models.FileField(storage=private_storage, max_length=255, blank=True)
    photo_public = models.ImageField(storage=public_storage, max_length=255, blank=True)
    photo_thumbnail = models.ImageField(storage=public_storage, max_length=255, blank=True)
    photo_format = models.CharField(max_length=8, blank=True)  # JPEG, PNG, WEBP, HEIF; blank without a photo
    from_reporter = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(text="") | ~Q(photo_public=""), name="reportupdate_text_or_photo"),
        ]

    def __str__(self) -> str:
        return f"{self.report_id} update {self.pk}"


class NonWorkingDay(models.Model):
    """A day the council is closed besides weekends and bank holidays (e.g. the Christmas
    closure): response targets skip it."""

    date = models.DateField(unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date:%d %b %Y} {self.name}"


class ApiKey(models.Model):
    """An Open311 client key. Only a SHA-256 of the key is stored."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, db_index=True)  # shown to admins to tell keys apart
    key_hash = models.CharField(max_length=64, unique=True)
    active = models.BooleanField(default=True)
    # Submissions per hour with this key (reports.throttle): a key is limited by this, never by its IP.
    reports_per_hour = models.PositiveIntegerField(default=1000)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
