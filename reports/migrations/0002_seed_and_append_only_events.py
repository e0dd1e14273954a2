from django.db import migrations


def seed(apps, schema_editor):
    from reports.categories import seed_categories

    seed_categories(apps.get_model("reports", "Category"))


APPEND_ONLY = """
CREATE FUNCTION reports_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'reports_reportevent is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reports_event_no_update BEFORE UPDATE ON reports_reportevent
    FOR EACH ROW EXECUTE FUNCTION reports_event_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial")]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunSQL(
            APPEND_ONLY,
            "DROP TRIGGER reports_event_no_update ON reports_reportevent;"
            "DROP FUNCTION reports_event_append_only();",
        ),
    ]
