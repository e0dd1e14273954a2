from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin
from django.urls import reverse
from django.utils.html import format_html

from .models import ApiKey, Area, Category, NonWorkingDay, Report, ReportEvent, RoutingRule, Team


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "name_cy", "slug", "group", "active", "order", "auto_triage_threshold",
                    "triage_target_days", "fix_target_days"]
    list_editable = ["active", "order", "auto_triage_threshold", "triage_target_days", "fix_target_days"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(NonWorkingDay)
class NonWorkingDayAdmin(admin.ModelAdmin):
    """The council's own closed days (reports.targets): new reports' targets skip them."""

    list_display = ["date", "name"]
    date_hierarchy = "date"


class ReportEventInline(admin.TabularInline):
    model = ReportEvent
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in ReportEvent._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Report)
class ReportAdmin(GISModelAdmin):
    list_display = ["service_request_id", "status", "final_category", "predicted_label",
                    "predicted_probability", "created_at"]
    list_filter = ["status", "channel", "final_category"]
    search_fields = ["service_request_id", "address", "description"]
    # Status moves only through reports.services.report_transition (the console), which
    # checks the workflow and records the event. The original photo is private: no media
    # URL serves it, so it links to the console's staff-only view instead.
    exclude = ["photo_original"]
    readonly_fields = ["service_request_id", "status", "original_photo", "photo_sha256", "photo_phash",
                       "model_version", "predicted_top_k", "created_at", "updated_at", "version",
                       "triage_due_at", "fix_due_at", "triaged_at", "closed_at"]
    inlines = [ReportEventInline]

    @admin.display(description="Original photo")
    def original_photo(self, report: Report) -> str:
        if not report.pk or not report.photo_original:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("console:original", args=[report.service_request_id]),
                           report.photo_original.name.rsplit("/", 1)[-1])


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "active", "reports_per_hour", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "email", "send_method", "active"]
    list_filter = ["kind", "active"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]


@admin.register(Area)
class AreaAdmin(GISModelAdmin):
    list_display = ["name", "source", "created_at"]
    search_fields = ["name"]


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ["pk", "priority", "category", "area", "team", "active"]
    list_filter = ["active", "team", "category"]
    list_select_related = ["category", "area", "team"]
