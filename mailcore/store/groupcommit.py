"""Group commit: concurrent deliveries share one write transaction and one flush to disk.

A durable commit waits for the disk (the WAL's fsync), and SQLite lets one writer at a
time hold the database. Delivered one by one, ten SMTP sessions queue for the writer and
each pays for its own flush. Here a thread that wants its rows written puts them in a
queue and takes the leader's lock; whoever gets the lock writes everything queued so far
(its own and the other threads') in one transaction, each in a savepoint of its own so
one delivery's failure (a full mailbox) undoes only its rows, and commits once. A thread
whose rows a leader committed meanwhile finds them done when it gets the lock. Every
caller returns only after the commit that holds its rows, so a 250 after DATA still means
the message survives kill -9.

Postgres is left to group its own commits: its writers run side by side, and concurrent
commits already share a WAL flush. A group there would serialise them and add two
savepoint round trips a delivery (bench/smtp_pop3.py: more CPU a message, not less).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import connection, transaction

from mailcore import dbpool

log = logging.getLogger("mailcore.store")

T = TypeVar("T")

# At most this many deliveries in one transaction: a bound on how long the writer lock
# is held and on how much one failed commit sends back for a retry.
MAX_GROUP = 64


class _Pending(Generic[T]):
    __slots__ = ("write", "result", "error", "done")

    def __init__(self, write: Callable[[], T]) -> None:
        self.write = write
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False


_queue: list[_Pending] = []
_queue_lock = threading.Lock()
_leader = threading.Lock()


def commit(write: Callable[[], T]) -> T:
    """Run write() in a durable write transaction, committed when this returns.

    Inside an open transaction write() simply joins it.
    """
    if connection.in_atomic_block or connection.vendor != "sqlite":
        with dbpool.writing():
            return write()
    pending = _Pending(write)
    with _queue_lock:
        _queue.append(pending)
    with _leader:
        while not pending.done:
            _commit_group()
    if pending.error is not None:
        raise pending.error
    return pending.result


def _commit_group() -> None:
    """Write and commit the queued deliveries (the caller holds the leader's lock)."""
    with _queue_lock:
        group = _queue[:MAX_GROUP]
        del _queue[:MAX_GROUP]
    committed = []
    try:
        with dbpool.writing():
            transaction.on_commit(lambda: committed.append(True))
            for pending in group:
                try:
                    with transaction.atomic():
                        pending.result = pending.write()
                except Exception as exc:  # this delivery's rows are undone, not the others'
                    pending.error = exc
    except Exception as exc:
        if not committed:
            for pending in group:
                pending.error = pending.error or exc
                pending.result = None
        else:  # a hook run after the commit failed: the rows are stored all the same
            log.warning("a hook after a group commit failed", exc_info=True)
    finally:
        for pending in group:
            if not committed and pending.error is None:  # interrupted (BaseException)
                pending.error = RuntimeError("the group commit was interrupted")
            pending.done = True
