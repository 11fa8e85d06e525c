"""What every page's template may ask: whether this is development, and if it keeps an outbox."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def development(request: HttpRequest) -> dict[str, bool]:
    return {"development": settings.DEBUG, "dev_outbox": settings.DEV_OUTBOX}
