"""What intake announces, so other apps can act on reports without `reports` importing them."""
from django.dispatch import Signal

# Sent after the transaction that stored a new report commits (reports.services.report_create,
# unless it was asked not to classify). Keyword argument: report_id. The classifier subscribes
# in its AppConfig.ready() and queues the report's classification.
report_submitted = Signal()
