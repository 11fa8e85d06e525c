"""What a command handler may use of its IMAP session: the Session protocol.

The command modules (folders, selection, fetch, search) take the session as this
protocol rather than importing IMAPSession, which imports them for its verb table:
that way the package has no import circle, not even one for type hints.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from mailcore.imap.view import View
from mailcore.sessions import SessionLog
from mailcore.store.events import Watch


class Updating(Protocol):
    """A session's updating searches (mailcore.imap.updating.Contexts is one)."""

    searches: dict[str, Any]
    modseq: int

    def stale(self, view: View) -> bool: ...

    async def announce(self, session: Session, updates: Callable[[], list[bytes]]
                       ) -> None: ...


class Notifying(Protocol):
    """A session's NOTIFY SET (mailcore.imap.notify.Notifier is one)."""

    watch: Watch

    @property
    def follows_selected(self) -> bool: ...

    def stop(self) -> None: ...


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
    changes: Watch | None  # the hub's watch of the mailbox, from login on
    updating: Updating | None  # searches kept up to date (RFC 5267), if any
    notifier: Notifying | None  # NOTIFY SET (RFC 5465), if any

    @property
    def utf8(self) -> bool: ...

    async def send(self, *lines: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write(self, line: bytes) -> None: ...

    async def sync(self, expunge_allowed: bool = True) -> None: ...

    async def read_line(self, timeout: float | None = None) -> bytes | None: ...

    def waiting_for_client(self) -> AbstractContextManager[None]: ...

    def enable_condstore(self) -> None: ...

    @property
    def compressed(self) -> bool: ...

    def start_compression(self) -> None: ...

    def select(self, view: View) -> None: ...

    def deselect(self) -> None: ...
