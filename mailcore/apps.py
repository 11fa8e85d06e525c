"""Django app configuration for mailcore."""

from __future__ import annotations

from django.apps import AppConfig


class MailcoreConfig(AppConfig):
    name = "mailcore"
    verbose_name = "Mail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The tasks sit above everything they schedule work for; the lower layers reach
        # them only through these hooks (mailcore/hooks.py), installed here once. Imported
        # here, not at the top: tasks imports the models, which load after app configs.
        from mailcore import hooks, tasks

        hooks.install(tasks.HOOKS)
