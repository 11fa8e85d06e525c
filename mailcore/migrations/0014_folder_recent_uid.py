"""Folders remember which UIDs a session has already seen as \\Recent (RFC 3501 2.3.2).

Messages already in a folder count as seen: only mail arriving from now on is \\Recent.
"""

from __future__ import annotations

from django.db import migrations, models
from django.db.models import F


def mark_existing_seen(apps, schema_editor):
    apps.get_model("mailcore", "Folder").objects.update(recent_uid=F("uidnext"))


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0013_message_sent_on"),
    ]

    operations = [
        migrations.AddField(
            model_name="folder",
            name="recent_uid",
            field=models.BigIntegerField(
                default=1,
                help_text="First UID no session has yet seen as \\Recent (RFC 3501 2.3.2)."),
        ),
        migrations.RunPython(mark_existing_seen, migrations.RunPython.noop),
    ]
