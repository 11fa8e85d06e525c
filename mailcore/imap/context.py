"""What a command handler may use of its IMAP session: the Session protocol.

The command modules (folders, selection, fetch, search) take the session as this
protocol rather than importing IMAPSession, which imports them for its verb table:
that way the package has no import circle, not even one for type hints.
"""

from __future__ import annotations

from typing import Protocol

from mailcore.imap.view import View
from mailcore.sessions import SessionLog


class Session(Protocol):
    """An IMAP session as a handler sees it (mailcore.imap.session.IMAPSession is one)."""

    log: SessionLog
    user: str  # the address logged in as
    mailbox_id: int | None  # set once logged in, which every handler here requires
    selected: View | None
    must_sync: bool  # set when a command changed the selected folder itself
    condstore: bool
    qresync: bool
    rev2: bool
    utf8_accept: bool

    @property
    def utf8(self) -> bool: ...

    async def send(self, *lines: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write(self, line: bytes) -> None: ...

    async def sync(self, expunge_allowed: bool = True) -> None: ...

    def enable_condstore(self) -> None: ...

    @property
    def compressed(self) -> bool: ...

    def start_compression(self) -> None: ...

    def select(self, view: View) -> None: ...

    def deselect(self) -> None: ...
