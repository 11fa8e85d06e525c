"""The selected folder as one session sees it: message numbers, and the updates it owes.

A session numbers messages by the UIDs it has announced (RFC 9051 section 2.3.1.2). It
keeps only those UIDs (4 bytes a message) and the folder's HIGHESTMODSEQ it has caught
up to; what changed since is asked of the store and turned into EXISTS, EXPUNGE (or
VANISHED) and FETCH FLAGS responses here.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Sequence

from mailcore.imap import encode, replies
from mailcore.message.sequenceset import SequenceSet
from mailcore.sessions import BadSyntax
from mailcore.store.messages import FolderState, MessageState, OpenedFolder

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class View:
    """One session's picture of its selected folder."""

    __slots__ = ("folder_id", "name", "read_only", "uidvalidity", "uidnext", "modseq",
                 "uids", "keywords", "pending", "saved", "shows_recent", "recent")

    def __init__(self, opened: OpenedFolder, name: str, read_only: bool,
                 shows_recent: bool = False) -> None:
        self.folder_id = opened.folder.id
        self.name = name
        self.read_only = read_only
        self.uidvalidity = opened.folder.uidvalidity
        self.uidnext = opened.folder.uidnext
        self.modseq = opened.folder.highestmodseq
        self.uids: array = opened.uids
        self.keywords: list[str] = list(opened.keywords)
        self.pending: set[int] = set()  # expunged elsewhere, not yet announced
        self.saved: array = array("I")  # the SEARCH result saved as "$" (RFC 5182)
        # \Recent (RFC 3501 section 2.3.2): the UID ranges [low, high) this session was
        # first to see. IMAP4rev2 has no \Recent (RFC 9051 appendix E).
        self.shows_recent = shows_recent
        low, high = opened.recent
        self.recent: list[tuple[int, int]] = [(low, high)] if shows_recent and low < high else []

    def __len__(self) -> int:
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq(self, uid: int) -> int | None:
        """Return the message number of a UID, or None when it is not in view."""
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def resolve(self, numbers: SequenceSet, uid: bool) -> list[int]:
        """Return the UIDs (ascending) a sequence set names, "$" being the saved result.

        Raise BadSyntax for a message number beyond the last one (RFC 9051 section
        6.4.5); UIDs that do not exist are simply left out (section 6.4.9).
        """
        if numbers.saved:
            return [u for u in self.saved if self.seq(u) is not None]
        if uid:
            return numbers.select(self.uids)
        count = len(self.uids)
        for low, high in numbers.ranges:
            if low is not None and high is not None and max(low, high) > count:
                raise BadSyntax(replies.INVALID_SEQUENCE)
            if (low is None) != (high is None) and count == 0:
                return []
        return [self.uids[n - 1] for n in numbers.iter_numbers(count)]

    def uid_ranges(self, numbers: SequenceSet, uid: bool) -> SequenceSet:
        """Return a set of message numbers as the equivalent UID set (for SEARCH).

        Each run of numbers maps to one run of UIDs, so "1:*" stays one range however
        large the folder.
        """
        if numbers.saved:
            return SequenceSet.from_numbers(self.resolve(numbers, uid))
        if uid:
            return numbers
        count = len(self.uids)
        ranges = []
        for low, high in numbers.resolve(count):
            low, high = max(low, 1), min(high, count)
            if low <= high:
                ranges.append((self.uids[low - 1], self.uids[high - 1]))
        return SequenceSet(tuple(ranges)) if ranges else SequenceSet(((0, 0),))

    # \Recent -----------------------------------------------------------------------------

    def is_recent(self, uid: int) -> bool:
        return any(low <= uid < high for low, high in self.recent)

    def recent_uids(self) -> list[int]:
        """Return the UIDs in view that are \\Recent in this session, ascending."""
        found: list[int] = []
        for low, high in self.recent:
            found += self.uids[bisect.bisect_left(self.uids, low):
                               bisect.bisect_left(self.uids, high)]
        return sorted(found)

    def add_recent(self, low: int, high: int) -> None:
        if self.shows_recent and low < high:
            self.recent.append((low, high))

    def recent_response(self) -> bytes:
        return encode.untagged(len(self.recent_uids()), "RECENT")

    def flags_of(self, uid: int, flags: tuple[str, ...]) -> tuple[str, ...]:
        """Return a message's flags as this session shows them (with \\Recent if so)."""
        return (*flags, "\\Recent") if self.recent and self.is_recent(uid) else flags

    # Flags --------------------------------------------------------------------------------

    def flags_response(self) -> list[bytes]:
        """Return the FLAGS and PERMANENTFLAGS responses (RFC 9051 sections 7.3.5, 7.1)."""
        names = [*SYSTEM_FLAGS, *self.keywords]
        permanent = (replies.NO_PERMANENT_FLAGS if self.read_only else
                     replies.PERMANENT_FLAGS.format(flags=" ".join([*names, "\\*"])))
        return [encode.untagged("FLAGS", encode.flags(names)),
                encode.untagged_status("OK", permanent)]

    def learn_keywords(self, flags: Iterable[str]) -> bool:
        """Note keywords first seen now; return whether FLAGS must be announced again."""
        new = [f for f in flags if not f.startswith("\\") and f not in self.keywords]
        self.keywords.extend(dict.fromkeys(new))
        return bool(new)

    # Updates ------------------------------------------------------------------------------

    def updates(self, folder: FolderState, changed: Sequence[MessageState],
                gone: Sequence[int], *, expunge_allowed: bool, condstore: bool,
                qresync: bool) -> list[bytes]:
        """Take in what changed since self.modseq; return the responses that announce it.

        Expunges wait in self.pending while they may not be sent (RFC 9051 section
        7.5.1: not during FETCH, STORE or SEARCH by message number).
        """
        known = self.max_uid
        self.pending.update(uid for uid in gone if uid <= known and self.seq(uid) is not None)
        out: list[bytes] = []
        if expunge_allowed:
            out += self.announce_expunges(qresync)
        new_flags = []
        for message in changed:
            if message.uid > known:
                continue
            if self.learn_keywords(message.flags):
                new_flags = self.flags_response()
        out[len(out):] = new_flags
        for message in changed:
            if message.uid > known or message.uid in self.pending:
                continue
            number = self.seq(message.uid)
            if number is not None:
                out.append(fetch_flags(number, message, uid=True, modseq=condstore,
                                       recent=self.is_recent(message.uid)))
        arrived = [m.uid for m in changed if m.uid > known]
        if arrived:
            self.uids.extend(sorted(arrived))
            out.append(encode.untagged(len(self.uids), "EXISTS"))
            if self.shows_recent:
                out.append(self.recent_response())
        self.uidnext = max(self.uidnext, folder.uidnext)
        self.modseq = max(self.modseq, folder.highestmodseq)
        return out

    def own_additions(self, states: Sequence[MessageState], before: int, after: int
                      ) -> list[bytes] | None:
        """Take in messages this session added to the folder itself (APPEND).

        Return the responses announcing them, or None when the folder changed otherwise
        too (its modseq was not ours before), and the store must be asked.
        """
        if before != self.modseq or not states or states[0].uid <= self.max_uid:
            return None
        out = self.flags_response() if self.learn_keywords(
            f for state in states for f in state.flags) else []
        self.uids.extend(state.uid for state in states)
        self.uidnext = max(self.uidnext, states[-1].uid + 1)
        self.modseq = after
        return [*out, encode.untagged(len(self.uids), "EXISTS")]

    def own_removals(self, uids: Iterable[int], before: int, after: int) -> bool:
        """Take in messages this session expunged itself; False if the store must be asked.

        They wait in self.pending, announced as any other expunge.
        """
        if before != self.modseq:
            return False
        self.pending.update(uid for uid in uids if self.seq(uid) is not None)
        self.modseq = after
        return True

    def announce_expunges(self, qresync: bool) -> list[bytes]:
        """Return EXPUNGE (or VANISHED) responses for the pending expunges, and drop them."""
        if not self.pending:
            return []
        pending, self.pending = self.pending, set()
        if qresync:
            out = [encode.untagged("VANISHED", encode.sequence_set(pending))]
        else:
            # Highest number first, so each response's number is still right when sent.
            numbers = sorted((self.seq(uid) for uid in pending), reverse=True)
            out = [encode.untagged(n, "EXPUNGE") for n in numbers if n is not None]
        self.uids = array("I", (u for u in self.uids if u not in pending))
        return out


def fetch_flags(number: int, message: MessageState, *, uid: bool, modseq: bool,
                flags: bool = True, recent: bool = False) -> bytes:
    """Return * n FETCH (FLAGS (...) [UID u] [MODSEQ (m)]) for a message's new state."""
    items: list[tuple[str, bytes]] = []
    if uid:
        items.append(("UID", b"%d" % message.uid))
    if flags:
        shown = (*message.flags, "\\Recent") if recent else message.flags
        items.append(("FLAGS", encode.flags(shown)))
    if modseq:
        items.append(("MODSEQ", b"(%d)" % message.modseq))
    return encode.fetch_response(number, items)
