"""Message.header: the header block kept at delivery for FETCH of header fields.

Mail stored before this is filled on first FETCH of its header (store.structure).
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0017_alter_trafficcount_kind"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="header",
            field=models.BinaryField(blank=True, null=True),
        ),
    ]
