"""Celery tasks: the worker's periodic jobs over the store."""

from __future__ import annotations

import logging

from celery import shared_task

from mailcore.store.blobs import collect_orphans

log = logging.getLogger("mailcore.tasks")


@shared_task
def collect_orphan_blobs() -> int:
    """Remove blobs no message or queue entry has pointed at for an hour."""
    removed = collect_orphans(grace_seconds=3600)
    if removed:
        log.info("collected %d orphan blobs", removed)
    return removed
