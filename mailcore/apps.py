"""Django app configuration for mailcore."""

from __future__ import annotations

from django.apps import AppConfig


class MailcoreConfig(AppConfig):
    name = "mailcore"
    verbose_name = "Mail"
    default_auto_field = "django.db.models.BigAutoField"
