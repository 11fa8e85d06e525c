"""Counting failed logins per client address and per user, shared through Django's cache."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache


def _keys(user: str, remote_ip: str) -> list[str]:
    return [f"authfail:ip:{remote_ip}", f"authfail:user:{user.lower()}"]


def is_limited(user: str, remote_ip: str) -> bool:
    """Return whether this user or this client address has failed too often lately."""
    counts = cache.get_many(_keys(user, remote_ip))
    return any(count >= settings.AUTH_MAX_FAILURES for count in counts.values())


def record_failure(user: str, remote_ip: str) -> None:
    for key in _keys(user, remote_ip):
        if cache.add(key, 1, settings.AUTH_FAILURE_WINDOW):
            continue
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, settings.AUTH_FAILURE_WINDOW)
