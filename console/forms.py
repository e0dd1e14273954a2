"""Input validation for console views. Each form validates, nothing more."""
from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from reports import params
from reports.models import Category, Report, Team

from .selectors import CATEGORY_FIELDS, SORTS, QueueFilters

STATUS_CHOICES = [("", "Any status"), ("open", "Open (not closed)"), *Report.Status.choices]


class QueueFilterForm(forms.Form):
    """Query-string filters shared by the queue, the map, exports and J/K navigation."""

    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)
    category = forms.ChoiceField(required=False)
    category_field = forms.ChoiceField(choices=[(c, c.title()) for c in CATEGORY_FIELDS], required=False,
                                       label="Label")
    min_confidence = forms.FloatField(required=False, min_value=0, max_value=1, label="Confidence from")
    max_confidence = forms.FloatField(required=False, min_value=0, max_value=1, label="to")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Reported from")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="to")
    bbox = forms.CharField(required=False, label="Map area",
                           help_text="min_lon,min_lat,max_lon,max_lat")
    disagree = forms.BooleanField(required=False, label="Citizen and model disagree")
    possibly_not_issue = forms.BooleanField(required=False, label="Possibly not an issue")
    auto_triaged = forms.BooleanField(required=False, label="Auto-triaged (spot checks)")
    mine = forms.BooleanField(required=False, label="Assigned to me")
    overdue = forms.BooleanField(required=False, label="Overdue")
    team = forms.ChoiceField(required=False)
    sort = forms.ChoiceField(choices=[("confidence", "Least confident first"), ("oldest", "Oldest first"),
                                      ("newest", "Newest first")], required=False)

    def __init__(self, data=None, *args, user=None, **kwargs):
        # No "status" in the query string means the default queue ("needs review");
        # "status=" (empty) means any status. No "team" means "my team" for a member of one.
        self.my_team_ids = tuple(user.teams.filter(active=True).values_list("pk", flat=True)) if user else ()
        if data is not None and ("status" not in data or "team" not in data):
            data = data.copy()
            data.setdefault("status", Report.Status.NEEDS_REVIEW)
            data.setdefault("team", "mine" if self.my_team_ids else "")
        super().__init__(data, *args, **kwargs)
        self.fields["team"].choices = [("", "Any team"), *([("mine", "My team (and not yet routed)")]
                                                           if self.my_team_ids else []),
                                       ("none", "Not yet routed"), *Team.objects.values_list("slug", "name")]
        self.fields["category"].choices = [("", "Any category")] + list(
            Category.objects.order_by("order", "name").values_list("slug", "name"))

    def clean_bbox(self):
        try:
            return params.parse_bbox(self.cleaned_data["bbox"], name="bbox", label="Map area")
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None

    def _clean_day(self, name: str):
        try:
            return params.check_date(self.cleaned_data[name], name=name)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None

    def clean_date_from(self):
        return self._clean_day("date_from")

    def clean_date_to(self):
        return self._clean_day("date_to")

    def to_filters(self, user) -> QueueFilters:
        """Call after is_valid(); invalid fields fall back to their defaults."""
        d = {k: v for k, v in self.cleaned_data.items()}
        return QueueFilters(
            status=d.get("status", Report.Status.NEEDS_REVIEW),
            category=d.get("category") or "",
            category_field=d.get("category_field") or "current",
            min_confidence=d.get("min_confidence"),
            max_confidence=d.get("max_confidence"),
            date_from=d.get("date_from"),
            date_to=d.get("date_to"),
            bbox=d.get("bbox"),
            disagree=bool(d.get("disagree")),
            possibly_not_issue=bool(d.get("possibly_not_issue")),
            auto_triaged=bool(d.get("auto_triaged")),
            assignee_id=user.pk if d.get("mine") else None,
            overdue=bool(d.get("overdue")),
            team="" if d.get("team") in ("", "mine", None) else d["team"],
            my_team_ids=self.my_team_ids if d.get("team") == "mine" else (),
            sort=d.get("sort") if d.get("sort") in SORTS else "confidence",
        )


class VersionForm(forms.Form):
    version = forms.IntegerField(min_value=1)


class VerifyForm(VersionForm):
    category = forms.CharField(max_length=100)

    def clean_category(self) -> Category:
        """A slug (buttons, the search list) or a name typed into the search box."""
        value = self.cleaned_data["category"].strip()
        active = Category.objects.filter(active=True)
        found = active.filter(slug=value).first() or active.filter(name__iexact=value).first()
        if found is None:
            names = ", ".join(active.values_list("name", flat=True))
            raise forms.ValidationError(f"Unknown category {value!r}; choose one of: {names}.")
        return found


class StatusForm(VersionForm):
    status = forms.ChoiceField(choices=Report.Status.choices)
    note = forms.CharField(required=False, max_length=2000)
    # Required when rejecting; the service checks it against console.services.REJECT_REASONS.
    reason = forms.CharField(required=False, max_length=32)


class NoteForm(forms.Form):
    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    public = forms.BooleanField(required=False, label="Public (shown to the citizen and in Open311)")


class AssignForm(VersionForm):
    assignee = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True), required=False,
                                      to_field_name="username")
    # Blank: no team. The report's current team may be inactive; the service refuses moving to one.
    team = forms.ModelChoiceField(queryset=Team.objects.all(), required=False, to_field_name="slug",
                                  error_messages={"invalid_choice": "Unknown team; choose one from the list."})


class DuplicateForm(VersionForm):
    original = forms.CharField(max_length=16)


class BulkForm(forms.Form):
    """`selected` values are "<pk>:<version>" as rendered in the queue."""

    action = forms.ChoiceField(choices=[("verify", "Verify as"), ("status", "Set status")])
    category = forms.ModelChoiceField(queryset=Category.objects.filter(active=True), to_field_name="slug",
                                      required=False)
    status = forms.ChoiceField(choices=[("", "—"), *Report.Status.choices], required=False)
    reason = forms.CharField(required=False, max_length=32)  # when rejecting; checked by the service

    def clean(self):
        d = super().clean()
        pairs = []
        for value in self.data.getlist("selected"):
            try:
                pk, version = (int(v) for v in value.split(":"))
            except ValueError:
                raise forms.ValidationError(f"Bad selection value {value!r}.") from None
            pairs.append((pk, version))
        if not pairs:
            raise forms.ValidationError("Select at least one report.")
        d["selected"] = pairs
        if d.get("action") == "verify" and not d.get("category"):
            self.add_error("category", "Choose the category to verify the selection as.")
        if d.get("action") == "status" and not d.get("status"):
            self.add_error("status", "Choose the status to set.")
        if d.get("action") == "status" and d.get("status") == Report.Status.REJECTED and not d.get("reason"):
            self.add_error("reason", "Choose a reason for rejecting.")
        return d


class ThresholdForm(forms.Form):
    category = forms.ModelChoiceField(queryset=Category.objects.all(), to_field_name="slug")
    threshold = forms.FloatField(min_value=0, max_value=1)
    reason = forms.CharField(max_length=500, strip=True)  # why the override: kept in the audit trail
