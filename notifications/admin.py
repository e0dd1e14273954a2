from django.contrib import admin

from .models import AlertSubscription, OutgoingMessage, Unsubscribe


@admin.register(OutgoingMessage)
class OutgoingMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "to_address", "report", "status", "attempts", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["to_address", "report__service_request_id"]
    readonly_fields = [f.name for f in OutgoingMessage._meta.fields]


@admin.register(Unsubscribe)
class UnsubscribeAdmin(admin.ModelAdmin):
    list_display = ["email", "report", "created_at"]
    search_fields = ["email"]


@admin.register(AlertSubscription)
class AlertSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["email", "area", "radius_m", "confirmed_at", "unsubscribed_at", "created_at"]
    list_filter = ["area"]
    search_fields = ["email"]
    readonly_fields = ["confirmed_at", "created_at", "unsubscribed_at"]
