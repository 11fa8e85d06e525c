"""Change notices between the worker processes of one mailcore, so IDLE hears of them at once.

A change committed in a worker wakes that worker's sessions at once (events.py), and
without Redis the other workers would find it only at their next poll (up to
MAILCORE_CHANGE_POLL later). So the supervisor makes a datagram socket pair per worker
before forking: each worker reads its own pair's inbox, and after every commit sends the
mailbox id to its siblings' inboxes. A notice is best effort: one that finds an inbox
full (its worker stalled, or being restarted) is dropped, and the poll finds the change.
With Redis, pub/sub already reaches the siblings (each worker is an origin of its own),
so there are no pairs.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

from django.conf import settings

_NOTICE = struct.Struct("!q")  # a mailbox id

# In a worker: its own inbox, and the siblings' inboxes it writes to.
_inbox: socket.socket | None = None
_siblings: list[socket.socket] = []


class Pairs:
    """A datagram socket pair per worker, made by the supervisor before it forks them."""

    def __init__(self, workers: int) -> None:
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        if workers < 2 or settings.REDIS_URL:
            return
        for _ in range(workers):
            inbox, outbox = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            inbox.setblocking(False)
            outbox.setblocking(False)
            self.pairs.append((inbox, outbox))

    def join(self, number: int) -> None:
        """In worker number (from 1): keep its inbox and the ways to its siblings."""
        global _inbox, _siblings
        _siblings = []
        for n, (inbox, outbox) in enumerate(self.pairs, 1):
            if n == number:
                _inbox = inbox
                outbox.close()
            else:
                _siblings.append(outbox)
                inbox.close()

    def close(self) -> None:
        for inbox, outbox in self.pairs:
            inbox.close()
            outbox.close()


def listen(loop: asyncio.AbstractEventLoop, wake: Callable[[int], None]) -> None:
    """Call wake(mailbox id) on the loop for every notice from a sibling."""
    if _inbox is not None:
        loop.add_reader(_inbox.fileno(), _receive, _inbox, wake)


def _receive(inbox: socket.socket, wake: Callable[[int], None]) -> None:
    while True:
        try:
            data = inbox.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        if len(data) == _NOTICE.size:
            wake(_NOTICE.unpack(data)[0])


def tell(mailbox_id: int) -> None:
    """Tell every sibling worker that a mailbox changed; never block, never raise."""
    for sibling in _siblings:
        try:
            sibling.send(_NOTICE.pack(mailbox_id))
        except OSError:  # its inbox is full: the sibling's poll finds the change
            pass
