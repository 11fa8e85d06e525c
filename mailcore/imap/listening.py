"""Waiting for the client's next command while telling it what changes meanwhile.

A session with updating searches (RFC 5267 section 4.3) or a NOTIFY SET (RFC 5465)
reads the first line of its next command in a task of its own, and while that waits,
sends what the change hub tells of: the selected folder's updates with their ADDTO and
REMOVEFROM, and NOTIFY's STATUS and LIST responses. Nothing is written once the line
has come, so pipelined commands and the literals of a command are read as before; a
session with neither never comes here and reads its commands as it always did.
"""

from __future__ import annotations

import asyncio

from mailcore.imap import notify
from mailcore.imap.context import Session


def listening(session: Session) -> bool:
    """Tell whether the session has anything to send between commands."""
    return session.updating is not None or session.notifier is not None


async def first_line(session: Session) -> bytes | None:
    """Return the first line of the next command (None at EOF), sending updates meanwhile.

    RFC 9051 section 7.5.1: no EXPUNGE while no command is in progress, unless NOTIFY
    asked for them (RFC 5465 section 5.3); ESEARCH REMOVEFROM may go out before it
    (RFC 5267 section 4.3.2).
    """
    reading = asyncio.ensure_future(session.read_line())
    try:
        while True:
            waits = {reading}
            notifier = session.notifier
            if notifier is not None:
                waits.add(asyncio.ensure_future(notifier.watch.wait()))
            follows = session.updating is not None or (
                notifier is not None and notifier.follows_selected)
            if follows and session.selected is not None and session.changes is not None:
                waits.add(asyncio.ensure_future(session.changes.wait()))
            try:
                with session.waiting_for_client():
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits - {reading}:
                    waiting.cancel()
            if reading.done() or not listening(session):
                break
            changed = session.changes is not None and session.changes.is_set()
            if notifier is not None and session.notifier is notifier and (
                    notifier.watch.is_set() or changed and notifier.follows_selected):
                await notify.deliver(session)
            elif session.updating is not None and changed:
                await session.sync(expunge_allowed=False)
        return await reading
    finally:
        if not reading.done():
            reading.cancel()
