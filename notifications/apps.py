from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # reports announces every audit event after commit; mail hangs off that, so reports
        # never imports this app.
        from reports.signals import contact_details_erasing, report_event_recorded

        from .receivers import on_report_event
        from .retention import on_contact_details_erasing

        report_event_recorded.connect(on_report_event, dispatch_uid="notifications.on_report_event")
        contact_details_erasing.connect(on_contact_details_erasing, dispatch_uid="notifications.erase_contact")
