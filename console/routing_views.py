"""Console pages where admins edit who fixes what: teams, routing rules and areas (GeoJSON
upload). Every page needs `console.manage_routing` (supervisors); the Django admin has the same
models for superusers.
"""
from __future__ import annotations

from functools import wraps

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, ProtectedError, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from reports.areas import areas_import
from reports.models import Area, Category, RoutingRule, Team

from .views import staff_view


def routing_admin(view):
    """Console access plus `console.manage_routing`, else 403."""
    @staff_view
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.has_perm("console.manage_routing"):
            raise PermissionDenied("You need the 'manage_routing' permission for this.")
        return view(request, *args, **kwargs)
    return wrapped


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "slug", "kind", "email", "send_method", "members", "active"]
        widgets = {"members": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        perm = Q(groups__permissions__codename="view_console") | Q(user_permissions__codename="view_console")
        self.fields["members"].queryset = (get_user_model().objects.filter(Q(is_superuser=True) | perm, is_active=True)
                                           .distinct().order_by("username"))


class RuleForm(forms.ModelForm):
    class Meta:
        model = RoutingRule
        fields = ["category", "area", "team", "priority", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].queryset = Category.objects.order_by("order", "name")
        self.fields["category"].empty_label = "Any category"
        self.fields["area"].queryset = Area.objects.defer("geometry")
        self.fields["area"].empty_label = "Anywhere"


class AreaUploadForm(forms.Form):
    file = forms.FileField(label="GeoJSON file", help_text="Polygon or MultiPolygon features in longitude/latitude.")
    name_field = forms.CharField(max_length=100, initial="name", label="Property that names each area")

    def clean_file(self):
        file = self.cleaned_data["file"]
        # Every upload shares the request body limit (reports.middleware), which follows PHOTO_MAX_BYTES.
        if file.size > settings.PHOTO_MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than {settings.PHOTO_MAX_BYTES / 1e6:.0f} MB; "
                                        f"simplify the boundaries or upload them in parts.")
        return file


def _page(request, *, status: int = 200, upload: AreaUploadForm | None = None, error: str = ""):
    return render(request, "console/routing.html", {
        "teams": Team.objects.annotate(n_members=Count("members", distinct=True),
                                       n_rules=Count("rules", distinct=True)),
        "rules": RoutingRule.objects.select_related("category", "team", "area").defer("area__geometry"),
        "areas": Area.objects.defer("geometry").annotate(n_rules=Count("rules")),
        "upload": upload or AreaUploadForm(), "error": error, "nav": "routing",
    }, status=status)


@require_http_methods(["GET"])
@routing_admin
def routing(request):
    return _page(request)


def _edit(request, form_class, instance, *, what: str):
    form = form_class(request.POST or None, instance=instance)
    if request.method == "POST":
        if form.is_valid():
            saved = form.save()
            messages.success(request, f"Saved {what} {saved}.")
            return redirect("console:routing")
        return render(request, "console/routing_form.html", {"form": form, "what": what, "instance": instance,
                                                             "nav": "routing"}, status=400)
    return render(request, "console/routing_form.html", {"form": form, "what": what, "instance": instance,
                                                         "nav": "routing"})


def _delete(request, obj, *, what: str):
    try:
        obj.delete()
    except ProtectedError as exc:
        uses = ", ".join(sorted({str(o) for o in exc.protected_objects})[:5])
        return _page(request, status=409, error=f"{what.capitalize()} {obj} is still used ({uses}); "
                                                f"change or delete those first.")
    messages.success(request, f"Deleted {what} {obj}.")
    return redirect("console:routing")


@require_http_methods(["GET", "POST"])
@routing_admin
def team_edit(request, slug: str = ""):
    return _edit(request, TeamForm, get_object_or_404(Team, slug=slug) if slug else None, what="team")


@require_POST
@routing_admin
def team_delete(request, slug: str):
    return _delete(request, get_object_or_404(Team, slug=slug), what="team")


@require_http_methods(["GET", "POST"])
@routing_admin
def rule_edit(request, pk: int | None = None):
    return _edit(request, RuleForm, get_object_or_404(RoutingRule, pk=pk) if pk else None, what="rule")


@require_POST
@routing_admin
def rule_delete(request, pk: int):
    return _delete(request, get_object_or_404(RoutingRule, pk=pk), what="rule")


@require_POST
@routing_admin
def area_upload(request):
    form = AreaUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, status=400, upload=form)
    file = form.cleaned_data["file"]
    try:
        areas = areas_import(data=file.read(), name_field=form.cleaned_data["name_field"], source=file.name)
    except ValidationError as exc:
        form.add_error("file", f"{' '.join(exc.messages)} Nothing was imported.")
        return _page(request, status=400, upload=form)
    messages.success(request, f"Imported {len(areas)} area(s) from {file.name}: {', '.join(a.name for a in areas)}.")
    return redirect("console:routing")


@require_POST
@routing_admin
def area_delete(request, pk: int):
    return _delete(request, get_object_or_404(Area.objects.defer("geometry"), pk=pk), what="area")
