"""Tombstones keep what FETCH shows of an expunged message for a while (RFC 2180 4.1.1)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0015_subscriptions"),
    ]

    operations = [
        migrations.AddField(
            model_name='expunged',
            name='answered',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='expunged',
            name='blob',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='mailcore.blob'),
        ),
        migrations.AddField(
            model_name='expunged',
            name='bodystructure',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='expunged',
            name='deleted',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='expunged',
            name='draft',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='expunged',
            name='envelope',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='expunged',
            name='flagged',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='expunged',
            name='internal_date',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='expunged',
            name='kept_until',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='expunged',
            name='keywords',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='expunged',
            name='seen',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='expunged',
            name='size',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='expunged',
            index=models.Index(condition=models.Q(('blob__isnull', False)), fields=['folder', 'uid'], name='expunged_kept_uid'),
        ),
        migrations.AddIndex(
            model_name='expunged',
            index=models.Index(condition=models.Q(('kept_until__isnull', False)), fields=['kept_until'], name='expunged_kept_until'),
        ),
    ]
