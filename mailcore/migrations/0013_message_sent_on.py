"""Messages keep the Date: header's own calendar date, for SEARCH SENTBEFORE/SENTON/SENTSINCE.

Existing rows get it from the date string their ENVELOPE kept (as written, with its
zone), or failing that from the UTC date they were searched by until now.
"""

from __future__ import annotations

import email.utils
from datetime import UTC

from django.db import migrations, models

BATCH = 1000


def header_day(envelope, sent_date):
    raw = envelope[0] if isinstance(envelope, list) and envelope else None
    if isinstance(raw, str):
        try:
            return email.utils.parsedate_to_datetime(raw).date()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return sent_date.astimezone(UTC).date()


def fill_sent_on(apps, schema_editor):
    Message = apps.get_model("mailcore", "Message")
    rows = Message.objects.filter(sent_date__isnull=False).only("pk", "envelope", "sent_date")
    batch = []
    for row in rows.iterator(chunk_size=BATCH):
        row.sent_on = header_day(row.envelope, row.sent_date)
        batch.append(row)
        if len(batch) >= BATCH:
            Message.objects.bulk_update(batch, ["sent_on"])
            batch = []
    if batch:
        Message.objects.bulk_update(batch, ["sent_on"])


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0012_message_sort_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="sent_on",
            field=models.DateField(
                blank=True, null=True,
                help_text="The Date: header's own calendar date (SEARCH SENT*)."),
        ),
        migrations.RunPython(fill_sent_on, migrations.RunPython.noop),
    ]
