"""Change notification: every session of a mailbox learns promptly that something changed.

A change committed in this process wakes its waiters at once. Changes made by other
processes (another mailcore, the worker, the web) are found by one cheap poll per
process of the watched mailboxes' folder counters; `MAILCORE_CHANGE_POLL` sets how often.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Sum

from mailcore import dbpool
from mailcore.models import Folder

log = logging.getLogger("mailcore.events")


class ChangeHub:
    """Per-process registry of sessions waiting for changes to a mailbox."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiters: dict[int, set[asyncio.Event]] = defaultdict(set)
        self.seen: dict[int, tuple] = {}
        self.poller: asyncio.Task | None = None

    def watch(self, mailbox_id: int) -> asyncio.Event:
        """Return an event set whenever the mailbox changes (call unwatch when done)."""
        self.loop = asyncio.get_running_loop()
        event = asyncio.Event()
        self.waiters[mailbox_id].add(event)
        if self.poller is None or self.poller.done():
            self.poller = self.loop.create_task(self._poll())
        return event

    def unwatch(self, mailbox_id: int, event: asyncio.Event) -> None:
        waiters = self.waiters.get(mailbox_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self.waiters[mailbox_id]
                self.seen.pop(mailbox_id, None)

    def wake(self, mailbox_id: int) -> None:
        """Wake every waiter of a mailbox; safe to call from any thread."""
        if self.loop is None or self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self._wake, mailbox_id)
        except RuntimeError:  # the loop stopped meanwhile
            pass

    def _wake(self, mailbox_id: int) -> None:
        for event in self.waiters.get(mailbox_id, ()):
            event.set()

    async def _poll(self) -> None:
        while self.waiters:
            await asyncio.sleep(settings.MAILCORE_CHANGE_POLL)
            ids = list(self.waiters)
            if not ids:
                break
            try:
                states = await dbpool.run(_folder_states, ids)
            except Exception:
                log.warning("change poll failed", exc_info=True)
                continue
            for mailbox_id in ids:
                state = states.get(mailbox_id, ())
                previous = self.seen.get(mailbox_id)
                self.seen[mailbox_id] = state
                if previous is not None and previous != state:
                    self._wake(mailbox_id)


def _folder_states(mailbox_ids: list[int]) -> dict[int, tuple]:
    rows = (Folder.objects.filter(mailbox_id__in=mailbox_ids).values("mailbox_id")
            .annotate(n=Count("id"), modseq=Sum("highestmodseq"), uid=Sum("uidnext"),
                      top=Max("id")))
    return {r["mailbox_id"]: (r["n"], r["modseq"], r["uid"], r["top"]) for r in rows}


hub = ChangeHub()


def changed(mailbox_id: int) -> None:
    """Tell this process's sessions, once the current transaction commits, of a change."""
    transaction.on_commit(lambda: hub.wake(mailbox_id))
