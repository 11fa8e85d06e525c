"""Subscriptions become a list of names kept apart from the folders (RFC 3501 6.3.6).

Every folder subscribed until now stays subscribed, by name.
"""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

BATCH = 1000


def copy_subscriptions(apps, schema_editor):
    Folder = apps.get_model("mailcore", "Folder")
    Subscription = apps.get_model("mailcore", "Subscription")
    rows = Folder.objects.filter(subscribed=True).values_list("mailbox_id", "name")
    batch = []
    for mailbox_id, name in rows.iterator(chunk_size=BATCH):
        batch.append(Subscription(mailbox_id=mailbox_id, name=name))
        if len(batch) >= BATCH:
            Subscription.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    Subscription.objects.bulk_create(batch, ignore_conflicts=True)


def copy_back(apps, schema_editor):
    Folder = apps.get_model("mailcore", "Folder")
    Subscription = apps.get_model("mailcore", "Subscription")
    Folder.objects.update(subscribed=False)
    for mailbox_id, name in Subscription.objects.values_list("mailbox_id", "name").iterator():
        Folder.objects.filter(mailbox_id=mailbox_id, name=name).update(subscribed=True)


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0014_folder_recent_uid"),
    ]

    operations = [
        migrations.CreateModel(
            name="Subscription",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("name", models.CharField(help_text="Full name, '/'-separated, in Unicode.",
                                          max_length=512)),
                ("mailbox", models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="subscriptions",
                    to="mailcore.mailbox")),
            ],
            options={
                "ordering": ["mailbox", "name"],
                "constraints": [models.UniqueConstraint(fields=("mailbox", "name"),
                                                        name="subscription_unique_name")],
            },
        ),
        migrations.RunPython(copy_subscriptions, copy_back),
        migrations.RemoveField(
            model_name="folder",
            name="subscribed",
        ),
    ]
