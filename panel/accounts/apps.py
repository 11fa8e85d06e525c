"""Django app configuration for the panel's account helpers."""

from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "panel.accounts"
    label = "panel_accounts"
    verbose_name = "Panel accounts"
