"""Pages of a folder's messages: sorted, searched, and what changed since the last look.

Built to stay quick on a 50,000-message folder: a page is one query for its ids (sorted,
LIMITed) and one for its rows; header searches run on the columns cached at delivery.
Body text is searched in the full-text index on Postgres (mailcore.store.fulltext: every
word, as a prefix). Elsewhere, and for mail stored before the index kept its text,
searching bodies reads the blobs: at most WEBMAIL_BODY_SEARCH_LIMIT messages, newest
first, saying how far it got (on Postgres, what it read is indexed for next time).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from email.utils import getaddresses

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet

from mailcore.models import Folder, Message, MessageText
from mailcore.store import fulltext, sorting, threading
from mailcore.store import messages as store_messages
from mailcore.store.blobs import blob_store
from mailcore.webclient import parts, sanitize

# Sorted by the store's indexed sort keys (mailcore.store.sorting): senders and
# recipients by display name, subjects without "Re:" and the like, case-insensitively.
SORTS = sorting.PAGE_ORDERS
_ROW_FIELDS = ("pk", "uid", "size", "internal_date", "sent_date", "seen", "flagged",
               "answered", "draft", "deleted", "keywords", "subject", "from_addr", "to_addrs",
               "bodystructure")
BODY_SEARCH_SECONDS = 5.0  # a body search also stops after this long


@dataclass(frozen=True)
class Query:
    """A search: every given field must match (case-insensitively, as a substring)."""

    text: str = ""  # sender, recipients, subject or body text
    sender: str = ""
    recipient: str = ""
    subject: str = ""
    body: str = ""
    since: date | None = None
    before: date | None = None  # exclusive
    unread: bool = False
    flagged: bool = False

    @property
    def active(self) -> bool:
        return any((self.text, self.sender, self.recipient, self.subject, self.body,
                    self.since, self.before, self.unread, self.flagged))


@dataclass
class Row:
    uid: int
    sender: str  # the display name, or the address
    sender_address: str
    recipients: str  # for Sent and Drafts, where who it went to matters
    subject: str
    date: datetime
    size: int
    seen: bool
    flagged: bool
    answered: bool
    draft: bool
    forwarded: bool
    has_attachments: bool


@dataclass
class Page:
    rows: list[Row]
    number: int
    size: int
    has_next: bool
    total: int | None  # None when a body search makes an exact count too dear
    body_searched: int | None = None  # how many messages' bodies a body search read
    body_search_complete: bool = True
    sort: str = "date"
    descending: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.size + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.size + len(self.rows)


# Senders and recipients repeat from row to row and page to page: email.utils reads
# each address once per process (a quarter of page()'s profile).
@functools.lru_cache(maxsize=4096)
def _display(value: str) -> tuple[str, str]:
    """Return (name or address, address) of the first address in a cached header."""
    pairs = [(n, a) for n, a in getaddresses([value]) if a or n]
    if not pairs:
        return value.strip(), ""
    name, address = pairs[0]
    return (name.strip() or address), address


@functools.lru_cache(maxsize=4096)
def _display_list(value: str) -> str:
    names = [(n.strip() or a) for n, a in getaddresses([value]) if a or n]
    return ", ".join(names) if names else value.strip()


def row_of(message: Message) -> Row:
    sender, address = _display(message.from_addr)
    return Row(
        uid=message.uid, sender=sender, sender_address=address,
        recipients=_display_list(message.to_addrs), subject=message.subject,
        date=message.internal_date, size=message.size, seen=message.seen,
        flagged=message.flagged, answered=message.answered, draft=message.draft,
        forwarded="$Forwarded" in (message.keywords or ()),
        has_attachments=parts.has_attachments(message.bodystructure),
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, dtime(), tzinfo=UTC)


def _in_headers(text: str) -> Q:
    return (Q(from_addr__icontains=text) | Q(to_addrs__icontains=text)
            | Q(cc_addrs__icontains=text) | Q(subject__icontains=text))


@dataclass
class _BodySearch:
    condition: Q
    searched: int | None  # messages whose blobs were read, if any had to be
    complete: bool


def _in_body(candidates: QuerySet[Message], text: str) -> _BodySearch:
    """Return the condition for messages whose body text holds text, among candidates."""
    found = Q(pk__in=[])
    indexed = fulltext.enabled()
    if indexed:
        blobs = fulltext.matching_blobs(text)
        if blobs is not None:
            found = Q(blob_id__in=blobs)
        candidates = candidates.filter(~Exists(
            MessageText.objects.filter(blob_id=OuterRef("blob_id"))))
    matched, read, complete = _body_matches(candidates, text, remember=indexed)
    return _BodySearch(found | Q(pk__in=matched), read if read or not indexed else None,
                       complete)


def _filtered(folder: Folder, query: Query) -> QuerySet[Message]:
    rows = Message.objects.filter(folder=folder)
    if query.sender:
        rows = rows.filter(from_addr__icontains=query.sender)
    if query.recipient:
        rows = rows.filter(Q(to_addrs__icontains=query.recipient)
                           | Q(cc_addrs__icontains=query.recipient))
    if query.subject:
        rows = rows.filter(subject__icontains=query.subject)
    if query.since:
        rows = rows.filter(internal_date__gte=_day_start(query.since))
    if query.before:
        rows = rows.filter(internal_date__lt=_day_start(query.before))
    if query.unread:
        rows = rows.filter(seen=False)
    if query.flagged:
        rows = rows.filter(flagged=True)
    return rows


def page(folder: Folder, query: Query = Query(), sort: str = "date", descending: bool = True,
         number: int = 1, size: int | None = None) -> Page:
    """Return one page of a folder's messages, sorted and searched."""
    size = size or settings.WEBMAIL_PAGE_SIZE
    number = max(1, number)
    sort = sort if sort in SORTS else "date"
    rows = _filtered(folder, query)
    bodies = []
    if query.text:
        # The search box: headers, or the text of the messages whose headers do not match.
        headers = _in_headers(query.text)
        bodies.append(_in_body(rows.exclude(headers), query.text))
        rows = rows.filter(headers | bodies[-1].condition)
    if query.body:
        bodies.append(_in_body(rows, query.body))
        rows = rows.filter(bodies[-1].condition)
    read = [body.searched for body in bodies if body.searched is not None]
    # Two steps: the sort touches only the id and the sort key of each row, and the page's
    # full rows are read by primary key.
    start = (number - 1) * size
    ids = list(rows.order_by(*sorting.page_ordering(sort, descending))
               .values_list("pk", flat=True)[start:start + size + 1])
    has_next = len(ids) > size
    ids = ids[:size]
    # The last page knows the count; a search with few matches (a full scan) is not made
    # to scan twice.
    total = start + len(ids) if not has_next and (ids or number == 1) else rows.count()
    by_id = {m.pk: m for m in Message.objects.filter(pk__in=ids).order_by().only(*_ROW_FIELDS)}
    return Page(
        rows=[row_of(by_id[pk]) for pk in ids if pk in by_id], number=number, size=size,
        has_next=has_next, total=total, body_searched=sum(read) if read else None,
        body_search_complete=all(body.complete for body in bodies), sort=sort,
        descending=descending,
    )


def _body_matches(rows: QuerySet[Message], needle: str, remember: bool = False
                  ) -> tuple[list[int], int, bool]:
    """Return (ids of messages whose text holds needle, how many were read, all read?).

    Reads newest first, at most WEBMAIL_BODY_SEARCH_LIMIT messages and for at most
    BODY_SEARCH_SECONDS; older mail is reached by narrowing the dates. remember: keep the
    text of what was read in the full-text index.
    """
    limit = settings.WEBMAIL_BODY_SEARCH_LIMIT
    wanted = needle.casefold()
    store = blob_store()
    deadline = time.monotonic() + BODY_SEARCH_SECONDS
    matched, read, texts = [], 0, {}
    candidates = rows.order_by("-internal_date", "-uid").values_list(
        "pk", "blob_id", "bodystructure")
    complete = True
    for pk, blob_id, structure in candidates[:limit + 1].iterator(200):
        if read >= limit or time.monotonic() > deadline:
            complete = False
            break
        read += 1
        try:
            raw = store.get(blob_id)
        except OSError:
            continue
        if wanted in body_text(raw, structure).casefold():
            matched.append(pk)
        if remember:
            texts[blob_id] = fulltext.searchable(raw)
    fulltext.remember(texts.items())
    return matched, read, complete


def body_text(raw: bytes, structure: dict | None) -> str:
    """Return the readable text of a message's body parts (HTML reduced to its text)."""
    layout = parts.layout(parts.structure_of(raw, structure), prefer_html=False)
    texts = []
    for part in layout.texts:
        value = parts.text(raw, part)
        texts.append(sanitize.html_to_text(value) if part.content_type == "text/html"
                     else value)
    return "\n".join(texts)


def conversation(folder: Folder, uid: int) -> list[Row]:
    """Return the messages of uid's conversation (THREAD=REFERENCES), oldest first."""
    uids = threading.conversation(folder.pk, uid)
    if len(uids) < 2:
        return []
    by_uid = {m.uid: m for m in Message.objects.filter(folder=folder, uid__in=uids)
              .only(*_ROW_FIELDS)}
    return [row_of(by_uid[u]) for u in uids if u in by_uid]


def neighbours(folder: Folder, uid: int) -> tuple[int | None, int | None]:
    """Return the UIDs of the newer and the older message next to uid (arrival order)."""
    rows = Message.objects.filter(folder=folder)
    newer = rows.filter(uid__gt=uid).order_by("uid").values_list("uid", flat=True).first()
    older = rows.filter(uid__lt=uid).order_by("-uid").values_list("uid", flat=True).first()
    return newer, older


# What changed since the page was drawn (the list's poll) ----------------------------------

MAX_CHANGES = 200


@dataclass
class Changes:
    modseq: int
    uidnext: int
    changed: list[dict]  # {"uid", "seen", "flagged", "answered"} of rows the page may show
    gone: list[int]
    new_rows: list[Row]  # arrived since uidnext, newest first
    reload: bool  # too much changed: draw the page again


def state(folder: Folder) -> dict[str, int]:
    """Return where a list's poll starts from: the folder's HIGHESTMODSEQ and UIDNEXT.

    Read it before the page's rows: a change in between is then reported by the first
    poll (perhaps again; the page skips rows it already shows).
    """
    fresh = Folder.objects.values("highestmodseq", "uidnext").get(pk=folder.pk)
    return {"modseq": fresh["highestmodseq"], "uidnext": fresh["uidnext"]}


def changes(folder: Folder, modseq: int, uidnext: int) -> Changes:
    """Return what changed in a folder after modseq, and the messages from uidnext on."""
    state, changed, gone = store_messages.changes_since(folder.pk, modseq)
    if len(changed) + len(gone) > MAX_CHANGES:
        return Changes(state.highestmodseq, state.uidnext, [], [], [], reload=True)
    flags = [{"uid": s.uid, "seen": "\\Seen" in s.flags, "flagged": "\\Flagged" in s.flags,
              "answered": "\\Answered" in s.flags, "deleted": "\\Deleted" in s.flags}
             for s in changed if s.uid < uidnext]
    new_uids = [s.uid for s in changed if s.uid >= uidnext]
    new_rows = []
    if new_uids:
        rows = (Message.objects.filter(folder=folder, uid__in=new_uids).only(*_ROW_FIELDS)
                .order_by("-internal_date", "-uid"))
        new_rows = [row_of(m) for m in rows]
    return Changes(state.highestmodseq, state.uidnext, flags, gone, new_rows, reload=False)


def parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def day_after(day: date | None) -> date | None:
    """Return the exclusive end of a search "until" a day: the next day.

    The last day of the calendar (9999-12-31) has no next day: until then is no end at all.
    """
    if day is None or day == date.max:
        return None
    return day + timedelta(days=1)
