"""Mail sessions' logins: the directory's check in the database pool, waiting for a slot.

The login throttle (mailcore.ratelimit) lets one address run at most AUTH_MAX_FAILURES
password checks at once. A login that finds them all taken, by checks that have not
failed, waits here on the event loop for one to end (only that session waits; no pool
thread is held), up to AUTH_FAILURE_DELAY_MAX, instead of being refused: a busy office
behind one address is not a guesser.
"""

from __future__ import annotations

import asyncio
import time

from django.conf import settings

from mailcore import dbpool, directory
from mailcore.directory import LoginRefused
from mailcore.principal import Principal


async def log_in(user: str, password: str, peer_ip: str) -> Principal:
    """Return the principal these credentials open, or raise LoginRefused."""
    deadline = time.monotonic() + max(settings.AUTH_FAILURE_DELAY_MAX, 1.0)
    pause = 0.02
    while True:
        try:
            return await dbpool.run(directory.log_in, user, password, peer_ip)
        except LoginRefused as refused:
            if not refused.busy or time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)
