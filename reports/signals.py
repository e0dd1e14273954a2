"""What intake announces, so other apps can act on reports without `reports` importing them."""
from django.dispatch import Signal

# Sent after the transaction that stored a new report commits (reports.services.report_create,
# unless it was asked not to classify). Keyword argument: report_id. The classifier subscribes
# in its AppConfig.ready() and queues the report's classification.
report_submitted = Signal()

# Sent after the transaction that recorded a ReportEvent commits (reports.services.record_event,
# the one writer of the audit trail: creation, every status change, labels, notes, merges...).
# Keyword argument: event (a saved ReportEvent; event.report is the report as it was saved).
# Sent robustly: a receiver that raises is logged and the others still run (the change is already
# committed). Queue slow work (a task) rather than do it here.
report_event_recorded = Signal()

# Sent inside the transaction that erases a report's reporter contact details (reports.retention),
# with the report's row locked. Keyword arguments: report, dry_run. Each receiver erases the
# copies of those details its app keeps (notifications: the addresses on its messages) and
# returns {what: how many} for the audit event, counting only when dry_run. Sent with send(),
# not send_robust(): a receiver that raises rolls that report's erasure back.
contact_details_erasing = Signal()
