"""App passwords get an indexed lookup column (the SHA-256 of the secret)."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0006_domain_claims"),
    ]

    operations = [
        migrations.AddField(
            model_name="apppassword",
            name="lookup",
            field=models.CharField(blank=True, db_index=True, default="", max_length=64),
        ),
    ]
