# Message bodies' text for full-text search, with a GIN index on Postgres.

import django.db.models.deletion
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations, models

# The expression mailcore.store.fulltext queries with; on Postgres only (SQLite keeps no
# text and reads the blobs).
INDEX = GinIndex(SearchVector("text", config="simple"), name="message_text_search")


def add_search_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("mailcore", "MessageText"), INDEX)


def remove_search_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("mailcore", "MessageText"), INDEX)


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0008_traffic_by_sender_and_system_mail"),
    ]

    operations = [
        migrations.CreateModel(
            name='MessageText',
            fields=[
                ('blob', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='text', serialize=False, to='mailcore.blob')),
                ('text', models.TextField()),
            ],
        ),
        migrations.RunPython(add_search_index, remove_search_index),
    ]
