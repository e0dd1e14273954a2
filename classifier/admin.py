from django.contrib import admin

from .models import ModelVersion, RetrainRun


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "status", "created_at", "activated_at", "activated_by"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]

    def has_add_permission(self, request):
        return False  # register with `manage.py register_model`, which validates the files


@admin.register(RetrainRun)
class RetrainRunAdmin(admin.ModelAdmin):
    list_display = ["id", "requested_at", "trigger", "reason", "requested_by", "state", "outcome"]
    list_filter = ["trigger", "state", "outcome"]
    readonly_fields = [f.name for f in RetrainRun._meta.fields]

    def has_add_permission(self, request):
        return False  # requested through the console, the triggers or `manage.py retrain`
