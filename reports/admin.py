from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin

from .models import ApiKey, Category, Report, ReportEvent


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "group", "active", "order", "auto_triage_threshold"]
    list_editable = ["active", "order", "auto_triage_threshold"]
    prepopulated_fields = {"slug": ["name"]}


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
    readonly_fields = ["service_request_id", "photo_sha256", "photo_phash", "model_version",
                       "predicted_top_k", "created_at", "updated_at", "version"]
    inlines = [ReportEventInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "active", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
