"""Threading a folder's messages (RFC 5256 THREAD) on the cached columns; conversations.

The algorithms are the message model's (mailcore.message.threads); this module reads
what they need (Message-ID, the cached parents' msg-ids, subject, dates) for the
messages a search matched, and finds one message's conversation for the webmail.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import Q

from mailcore.message import sortkeys, threads
from mailcore.message.searchkeys import SearchKey
from mailcore.message.threads import Node, ThreadMessage
from mailcore.models import Message
from mailcore.store import search, sql

ALGORITHMS = {"ORDEREDSUBJECT": threads.ordered_subject, "REFERENCES": threads.references}
_FIELDS = ("uid", "message_id", "thread_refs", "subject", "sent_date", "internal_date")
# A conversation looked up for one message reads at most this many candidates.
MAX_CONVERSATION = 1000
MAX_LOOKUP_REFERENCES = 20


def thread(folder_id: int, algorithm: str, key: SearchKey, max_uid: int) -> list[Node]:
    """Return the threads of the messages matching key; node numbers are UIDs.

    Sequence-number keys must already be UID sets, as for search.search.
    """
    matched = {uid for uid, _ in search.search(folder_id, key, max_uid)}
    if not matched:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_statement(), [folder_id, max_uid])
        rows = sql.decode(Message, _FIELDS, cursor.fetchall())
    return ALGORITHMS[algorithm]([_message(row) for row in rows if row[0] in matched])


@sql.statements
def _statement() -> str:
    m = sql.Names(Message)
    return sql.select(Message, _FIELDS, f"{m.folder_id} = %s AND {m.uid} <= %s "
                      f"ORDER BY {m.uid}")


def _message(row: Iterable) -> ThreadMessage:
    uid, message_id, refs, subject, sent_date, internal_date = row
    base, reply = sortkeys.base_subject(subject)
    return ThreadMessage(uid, sortkeys.own_message_id(message_id),
                         tuple(sortkeys.message_ids(refs)), sortkeys.casemap(base), reply,
                         sent_date or internal_date)


def conversation(folder_id: int, uid: int) -> list[int]:
    """Return the UIDs of the conversation uid belongs to (THREAD=REFERENCES), in order.

    Only the likely relatives are read, by index (a 50,000-message folder is not
    scanned): those with its base subject, and those whose thread root
    (sortkeys.thread_root: the first parent they name, else themselves) is its own
    root, one of its nearest parents, or itself; [uid] alone when it has none (or does
    not exist). Deviation: a relative that names none of these first and has another
    subject (a reply whose References lost their start) is left out.
    """
    row = (Message.objects.filter(folder_id=folder_id, uid=uid)
           .values_list(*_FIELDS).first())
    if row is None:
        return []
    message = _message(row)
    ids = [*message.references[:1], *message.references[-MAX_LOOKUP_REFERENCES:],
           *([message.message_id] if message.message_id else [])]
    roots = sorted({sortkeys.thread_root(None, f"<{message_id}>") for message_id in ids})
    related = [Q(thread_root=root) for root in roots]
    if message.base_subject:
        related.append(Q(sort_subject=message.base_subject))
    # One query a condition, each read by its own index, newest first: under an OR (or a
    # UNION) SQLite walks the whole folder in UID order instead.
    found = {uid: row}
    for condition in related:
        found.update((row[0], row) for row in Message.objects.filter(
            condition, folder_id=folder_id).order_by("-uid").values_list(*_FIELDS)
            [:MAX_CONVERSATION])
    rows = [found[u] for u in sorted(found, reverse=True)[:MAX_CONVERSATION]]
    rows.reverse()
    for root in threads.references([_message(r) for r in rows]):
        numbers = root.numbers()
        if uid in numbers:
            return numbers
    return [uid]
