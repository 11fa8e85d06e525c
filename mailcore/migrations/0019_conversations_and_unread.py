"""Message.thread_root (webmail's conversations by index) and an index for unread counts."""

from django.db import migrations, models

BATCH = 2000


def fill_thread_roots(apps, schema_editor):
    """Compute thread_root from the columns every row already has (no blob is read)."""
    from mailcore.message.sortkeys import thread_root

    Message = apps.get_model("mailcore", "Message")
    last = 0
    while True:
        rows = list(Message.objects.filter(pk__gt=last).order_by("pk")
                    .only("pk", "message_id", "thread_refs")[:BATCH])
        if not rows:
            return
        for row in rows:
            row.thread_root = thread_root(row.message_id, row.thread_refs)
        Message.objects.bulk_update([r for r in rows if r.thread_root], ["thread_root"])
        last = rows[-1].pk


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0018_message_header"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="thread_root",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
        migrations.RunPython(fill_thread_roots, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["folder", "thread_root", "uid"],
                               name="message_folder_thread"),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(condition=models.Q(("deleted", False), ("seen", False)),
                               fields=["folder"], name="message_folder_unread"),
        ),
    ]
