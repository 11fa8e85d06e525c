"""Hand-written SQL (mailcore.store.sql) gives what the ORM gives, on SQLite and Postgres.

Every read statement's decoded rows are compared with the ORM's for the same query (values
and Python types: aware datetimes, decoded JSON, bools); every write statement's rows, read
back through the ORM, with the rows the ORM itself writes for the same change. The data is
made by real deliveries, APPENDs, STOREs and EXPUNGEs through the store services. The
Django internals the module relies on are pinned here, so an upgrade fails loudly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.db import connection
from django.db.models import F, JSONField, Q
from django.db.models.functions import Coalesce, TruncDate
from django.test.utils import CaptureQueriesContext

from mailcore import dbpool, directory
from mailcore.message.summary import summarize
from mailcore.models import (
    Alias,
    Blob,
    Domain,
    Expunged,
    Folder,
    Mailbox,
    Message,
    MessageText,
)
from mailcore.store import delivery, fulltext, messages, sql, structure
from mailcore.store import search as store_search
from mailcore.store.delivery import deliver
from mailcore.store.folders import INBOX, find_folder
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

RAWS = [
    (b"From: =?utf-8?q?J=C3=B6rg?= <j@remote.test>\r\nTo: alice@example.test\r\n"
     b"Cc: Carol <c@remote.test>\r\nSubject: =?utf-8?b?SGVsbG8gd8O2cmxk?=\r\n"
     b"Message-ID: <m1@remote.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\n\r\n"
     b"Body: 50% off_ \\ all\r\n"),
    b"From: a@remote.test\r\nSubject: no date, 100%_done\r\n\r\nplain\r\n",
    (b"From: b@remote.test\r\nTo: x@remote.test\r\nSubject: report\r\n"
     b"Date: Mon, 2 Mar 2026 23:30:00 -0800\r\nMIME-Version: 1.0\r\n"
     b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
     b"Content-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n--XX\r\n"
     b"Content-Type: application/pdf; name=r.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     b"JVBERi0=\r\n--XX--\r\n"),
]
APPENDED = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
ALL_FIELDS = [f.attname for f in Message._meta.concrete_fields]


@pytest.fixture
def alice(db):
    directory.add_domain("example.test")
    return directory.add_mailbox("alice@example.test", PASSWORD)


@pytest.fixture
def bob(alice):
    return directory.add_mailbox("bob@example.test", PASSWORD)


def fill(mailbox) -> Folder:
    """Deliver, append, flag and expunge in a mailbox's INBOX; return the folder."""
    for raw in RAWS:
        deliver(raw, "a@remote.test", [mailbox.pk])
    inbox = find_folder(mailbox.pk, INBOX)
    messages.append(inbox.pk, RAWS[0], ["\\Seen", "$Label", "Work"], APPENDED)
    messages.append(inbox.pk, RAWS[1], ["\\Draft", "\\Deleted"])
    messages.store_flags(inbox.pk, [1, 2], "add", ["\\Flagged", "$Label"])
    messages.store_flags(inbox.pk, [3], "set", ["\\Answered", "\\Deleted", "Other"])
    messages.expunge_deleted(inbox.pk, [3])
    inbox.refresh_from_db()
    return inbox


def assert_same(got: object, want: object, name: str) -> None:
    """Equal values of the same type (nested JSON too: a tuple is not a list)."""
    assert (got, type(got)) == (want, type(want)), name
    if isinstance(want, datetime):
        assert got.tzinfo is not None, name


def assert_rows_match(rows: list, orm: list[Message], names) -> None:
    assert [row.uid for row in rows] == [m.uid for m in orm]
    for row, message in zip(rows, orm, strict=True):
        for name in names:
            got = getattr(row, "pk" if name == "id" else name)
            assert_same(got, getattr(message, name), f"{name} of UID {message.uid}")


def orm_messages(folder: Folder, *conditions: Q) -> list[Message]:
    return list(Message.objects.filter(*conditions, folder=folder).order_by("uid"))


# Read statements: decoded rows equal the ORM's ---------------------------------------------

def test_folder_statements_read_what_the_orm_reads(alice):
    inbox = fill(alice)
    want = Folder.objects.values_list(*messages._FOLDER_FIELDS).get(pk=inbox.pk)
    with dbpool.writing(), connection.cursor() as cursor:
        read = [messages._read_folder(cursor, inbox.pk, statement)
                for statement in (messages._sql().folder, messages._sql().lock_folder)]
    read.append(messages._folder_named(alice.pk, "inbox"))
    for state in read:
        for name, got, value in zip(messages._FOLDER_FIELDS, vars(state).values(), want,
                                    strict=True):
            assert_same(got, value, name)


def test_flag_statements_decode_rows_as_the_orm_does(alice):
    inbox = fill(alice)
    _, states = messages.snapshot(inbox.pk)
    with connection.cursor() as cursor:
        rows = messages._flag_rows(cursor, messages._sql().all_flags, [inbox.pk])
        changed = messages._flag_rows(cursor, messages._sql().changed, [inbox.pk, 4])
    assert_rows_match(rows, orm_messages(inbox), messages._FLAG_FIELDS)
    assert_rows_match(changed, orm_messages(inbox, Q(modseq__gt=4)), messages._FLAG_FIELDS)
    assert all(type(row.seen) is bool and type(row.keywords) is list for row in rows)
    assert [s.flags for s in states] == [messages.flags_of(m) for m in orm_messages(inbox)]


def test_fetch_rows_of_every_column_equal_the_orm_messages(alice):
    inbox = fill(alice)
    uids = [m.uid for m in orm_messages(inbox)]
    for changed_since in (None, 0, 5):
        rows = messages.fetch_rows(inbox.pk, uids, ALL_FIELDS, changed_since)
        since = Q() if changed_since is None else Q(modseq__gt=changed_since)
        assert_rows_match(rows, orm_messages(inbox, since), ALL_FIELDS)
    # Many ranges: the bounding range in SQL, the members kept in Python.
    odd = list(range(1, 2 * messages.MAX_UID_RANGES + 8, 2))
    rows = messages.fetch_rows(inbox.pk, odd, ALL_FIELDS)
    assert_rows_match(rows, orm_messages(inbox, Q(uid__in=odd)), ALL_FIELDS)


def test_sync_and_open_statements_read_what_the_orm_reads(alice):
    inbox = fill(alice)
    _, _, gone = messages.changes_since(inbox.pk, 0)
    assert gone == sorted(Expunged.objects.filter(folder=inbox).values_list("uid", flat=True))
    assert gone == [3]
    opened = messages.open_folder(inbox.pk)
    assert list(opened.uids) == [m.uid for m in orm_messages(inbox)]
    assert opened.first_unseen == orm_messages(inbox, Q(seen=False))[0].uid
    keywords = {k for m in orm_messages(inbox) for k in m.keywords}
    assert sorted(opened.keywords) == sorted(keywords) == ["$Label", "Work"]
    with connection.cursor() as cursor:
        cursor.execute(messages._sql().deleted.format(uids=""), [inbox.pk])
        deleted = cursor.fetchall()
    want = Message.objects.filter(folder=inbox, deleted=True).order_by("uid")
    assert [tuple(row) for row in deleted] == list(want.values_list("pk", "uid", "size"))
    assert len(deleted) == 1


def test_search_rows_and_matches_equal_the_orm(alice):
    inbox = fill(alice)
    statements = store_search._sql()
    with connection.cursor() as cursor:
        cursor.execute(statements.rows.format(where=f"{statements.m.folder_id} = %s"),
                       [inbox.pk])
        rows = messages.MessageRow.decoded(store_search._ROW_FIELDS, cursor.fetchall())
    assert_rows_match(rows, orm_messages(inbox), store_search._ROW_FIELDS)
    # Rows are set, compared and hashed as objects, whatever their columns hold.
    first, *others = rows
    assert others and first.uid != others[0].uid
    first.uid, first.note = others[0].uid, "kept"
    assert (first.uid, first.note) == (others[0].uid, "kept")
    assert first != others[0] and len({first, *others}) == len(rows)
    s = store_search
    day = date(2026, 11, 27)
    sent = Coalesce("sent_on", TruncDate("internal_date", tzinfo=UTC))
    cases = [
        (s.HeaderKey("subject", "WÖRLD"), Q(subject__icontains="WÖRLD")),
        (s.HeaderKey("subject", "100%_"), Q(subject__icontains="100%_")),
        (s.HeaderKey("from", "jörg"), Q(from_addr__icontains="jörg")),
        (s.HeaderKey("cc", "carol"), Q(cc_addrs__icontains="carol")),
        (s.FlagKey("$label"), Q(keywords__icontains='"$label"')),
        (s.FlagKey("Work", present=False), ~Q(keywords__icontains='"Work"')),
        (s.FlagKey("\\Seen", present=False), Q(seen=False)),
        (s.FlagKey("\\flagged"), Q(flagged=True)),
        (s.SizeKey("LARGER", 100), Q(size__gt=100)),
        (s.DateKey("INTERNAL", "BEFORE", date(2021, 1, 1)),
         Q(internal_date__lt=datetime(2021, 1, 1, tzinfo=UTC))),
        (s.DateKey("SENT", "ON", day), Q(sent=day)),
        (s.DateKey("SENT", "SINCE", date(2026, 3, 3)), Q(sent__gte=date(2026, 3, 3))),
        (s.NotKey(s.DateKey("SENT", "BEFORE", day)), ~Q(sent__lt=day)),
        (s.ModSeqKey(6), Q(modseq__gte=6)),
        (s.OrKey(s.FlagKey("\\Draft"), s.SizeKey("SMALLER", 80)),
         Q(draft=True) | Q(size__lt=80)),
        (s.AndKey((s.FlagKey("\\Flagged"), s.TextKey("BODY", "50% OFF"))),
         Q(flagged=True, uid__in=[1, 4])),  # the body text is checked in Python
    ]
    for key, condition in cases:
        want = (Message.objects.annotate(sent=sent).filter(condition, folder=inbox)
                .order_by("uid").values_list("uid", "modseq"))
        assert store_search.search(inbox.pk, key, 99) == list(want), key


def orm_route(local: str, domain: str) -> tuple | None:
    """The quick route's row (mailbox, its state, exact alias, catch-all), by the ORM."""
    hosted = Domain.objects.receiving().filter(name=domain).first()
    if hosted is None:
        return None
    mailbox = Mailbox.objects.filter(domain=hosted, local_part=local).first()
    aliases = Alias.objects.filter(domain=hosted, is_active=True)
    return ((None, None, None, None) if mailbox is None else
            (mailbox.pk, mailbox.is_active, mailbox.quota_bytes, mailbox.used_bytes)) + (
        aliases.filter(local_part=local).exists(), aliases.filter(local_part="").exists())


def test_the_route_statement_reads_what_the_orm_reads(alice):
    directory.add_mailbox("off@example.test", PASSWORD)
    Mailbox.objects.filter(local_part="off").update(is_active=False, used_bytes=5)
    directory.add_alias("team@example.test", ["alice@example.test"])
    directory.add_domain("other.test")
    directory.add_alias("@other.test", ["alice@example.test"])
    directory.add_domain("pending.test", verified=False)
    for local, domain in [("alice", "example.test"), ("off", "example.test"),
                          ("team", "example.test"), ("nobody", "example.test"),
                          ("any", "other.test"), ("x", "pending.test"), ("x", "nowhere.test")]:
        with connection.cursor() as cursor:
            cursor.execute(directory._route_sql(), [local, local, domain])
            row = cursor.fetchone()
        want = orm_route(local, domain)
        assert (row is None) == (want is None), (local, domain)
        if row is not None:
            # Booleans come back as 0/1 from SQLite; the route only tests their truth.
            assert tuple(row) == want, (local, domain)


# Write statements: the rows they leave equal what the ORM writes -----------------------

def orm_values(message: Message, skip=("id", "folder_id")) -> dict:
    return {name: getattr(message, name) for name in ALL_FIELDS if name not in skip}


def assert_same_values(got: dict, want: dict) -> None:
    for name in want:
        assert_same(got[name], want[name], name)


def test_delivery_and_append_write_the_rows_the_orm_writes(alice, bob):
    now = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    raw = RAWS[0]
    inbox = find_folder(alice.pk, INBOX)
    with dbpool.writing(), connection.cursor() as cursor:
        assert delivery.charge(cursor, [alice.pk], len(raw)) == []
        delivery.record_blob(cursor, "k1", len(raw), now)
        fields = {**summarize(raw), **structure.compute(raw)}
        delivery.insert(cursor, (alice.pk, INBOX), "k1", len(raw), now, fields)
        delivery.insert(cursor, inbox.pk, "k1", len(raw), APPENDED, fields,
                        {"seen": True, "keywords": ["$Label", "Work"]})
    # The same by the ORM, in bob's INBOX.
    target = find_folder(bob.pk, INBOX)
    Mailbox.objects.filter(pk=bob.pk).update(used_bytes=F("used_bytes") + len(raw))
    Blob.objects.create(key="k2", size=len(raw))
    Blob.objects.filter(key="k2").update(created_at=now)  # auto_now_add ignores a value
    for when, flags in [(now, {}), (APPENDED, {"seen": True, "keywords": ["$Label", "Work"]})]:
        Folder.objects.filter(pk=target.pk).update(uidnext=F("uidnext") + 1,
                                                   highestmodseq=F("highestmodseq") + 1)
        target.refresh_from_db()
        Message.objects.create(folder=target, uid=target.uidnext - 1, blob_id="k1",
                               size=len(raw), internal_date=when,
                               modseq=target.highestmodseq, **fields, **flags)
    got, want = orm_messages(inbox), orm_messages(target)
    assert len(got) == len(want) == 2
    for mine, theirs in zip(got, want, strict=True):
        assert_same_values(orm_values(mine), orm_values(theirs))
    assert_same(Blob.objects.get(key="k1").created_at, Blob.objects.get(key="k2").created_at,
                "created_at")
    assert Blob.objects.get(key="k1").size == Blob.objects.get(key="k2").size
    inbox.refresh_from_db()
    assert (inbox.uidnext, inbox.highestmodseq) == (target.uidnext, target.highestmodseq)
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.used_bytes == bob.used_bytes == len(raw)


def test_the_kept_text_is_the_row_the_orm_writes(alice):
    now = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    with dbpool.writing(), connection.cursor() as cursor:
        delivery.record_blob(cursor, "k1", 10, now)
        fulltext.record(cursor, "k1", "some words")
        fulltext.record(cursor, "k1", "other words")  # a blob's text is kept once
    Blob.objects.create(key="k2", size=10)
    MessageText.objects.create(blob_id="k2", text="some words")
    assert (MessageText.objects.get(blob_id="k1").text
            == MessageText.objects.get(blob_id="k2").text == "some words")


def test_store_and_expunge_write_the_rows_the_orm_writes(alice, bob):
    for mailbox in (alice, bob):
        for raw in RAWS:
            deliver(raw, "a@remote.test", [mailbox.pk])
    mine, theirs = find_folder(alice.pk, INBOX), find_folder(bob.pk, INBOX)
    messages.store_flags(mine.pk, [1, 2], "add", ["\\Seen", "\\Deleted", "$Label", "Work"])
    messages.store_flags(mine.pk, [2], "remove", ["$Label"])
    messages.expunge_deleted(mine.pk, [1])
    # The same by the ORM.
    with dbpool.writing():
        modseq = theirs.highestmodseq + 1
        Message.objects.filter(folder=theirs, uid__in=[1, 2]).update(
            seen=True, deleted=True, keywords=["$Label", "Work"], modseq=modseq)
        Message.objects.filter(folder=theirs, uid=2).update(keywords=["Work"], modseq=modseq + 1)
        gone = Message.objects.get(folder=theirs, uid=1)
        Expunged.objects.create(folder=theirs, uid=1, modseq=modseq + 2)
        gone.delete()
        Folder.objects.filter(pk=theirs.pk).update(highestmodseq=modseq + 2)
        Mailbox.objects.filter(pk=bob.pk).update(used_bytes=F("used_bytes") - gone.size)
    got, want = orm_messages(mine), orm_messages(theirs)
    assert [m.uid for m in got] == [m.uid for m in want] == [2, 3]
    for a, b in zip(got, want, strict=True):
        assert_same_values(orm_values(a, skip=("id", "folder_id", "blob_id", "internal_date")),
                           orm_values(b, skip=("id", "folder_id", "blob_id", "internal_date")))
    tombstones = [list(Expunged.objects.filter(folder=f).values_list("uid", "modseq"))
                  for f in (mine, theirs)]
    assert tombstones[0] == tombstones[1] == [(1, modseq + 2)]
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.highestmodseq == theirs.highestmodseq
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.used_bytes == bob.used_bytes


# The statements: one round trip each, the same count as before -----------------------------

def count_statements(action) -> int:
    with CaptureQueriesContext(connection) as queries:
        action()
    return len([q for q in queries.captured_queries
                if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE", "BEGIN",
                                                     "COMMIT", "SET", "PRAGMA"))])


def test_each_operation_takes_the_statements_it_took_before(alice):
    inbox = fill(alice)
    uids = [m.uid for m in orm_messages(inbox)]
    counts = {
        "deliver": count_statements(lambda: deliver(RAWS[1], "a@remote.test", [alice.pk])),
        "append": count_statements(lambda: messages.append(inbox.pk, RAWS[1], ["\\Seen"])),
        "store": count_statements(lambda: messages.store_flags(inbox.pk, uids, "add", ["x"])),
        "snapshot": count_statements(lambda: messages.snapshot(inbox.pk)),
        "changes": count_statements(lambda: messages.changes_since(inbox.pk, 1)),
        "open": count_statements(lambda: messages.select_folder(alice.pk, INBOX)),
        "fetch": count_statements(lambda: messages.fetch_rows(inbox.pk, uids, ALL_FIELDS)),
        "search": count_statements(lambda: store_search.search(
            inbox.pk, store_search.TextKey("BODY", "x"), 99)),
        "expunge": count_statements(lambda: messages.expunge_deleted(inbox.pk)),
        "route": count_statements(lambda: directory.resolve("alice@example.test")),
    }
    # Figures from before the statements moved into one pattern (same data, same calls);
    # delivery includes the vacation lookup after commit. On Postgres, storing a message
    # also keeps its text for full-text search.
    text = 1 if fulltext.enabled() else 0
    assert counts == {"deliver": 5 + text, "append": 5 + text, "store": 4, "snapshot": 2,
                      "changes": 3, "open": 4, "fetch": 1, "search": 1, "expunge": 7,
                      "route": 1}


# The Django internals mailcore.store.sql relies on ------------------------------------------

def test_the_django_internals_the_statements_rely_on_still_behave():
    from django.db.models.expressions import Col

    keywords = Message._meta.get_field("keywords")
    column = Col(Message._meta.db_table, keywords)
    # decode(): the ORM's converters, from the backend and from the expression.
    assert isinstance(connection.ops.get_db_converters(column), list)
    assert column.get_db_converters(connection) == [keywords.from_db_value]
    assert isinstance(keywords, JSONField)
    assert keywords.from_db_value('["a"]', column, connection) == ["a"]
    decoded = sql.decode(Message, ["keywords", "seen", "internal_date"],
                         [('["$x"]', 1 if connection.vendor == "sqlite" else True,
                           "2026-01-02 03:04:05" if connection.vendor == "sqlite"
                           else datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))])
    assert decoded == [[["$x"], True, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)]]
    assert type(decoded[0][1]) is bool and decoded[0][2].tzinfo is not None
    if connection.vendor == "sqlite":  # its boolean converter, mapped by decode_rows()
        assert type(connection.ops).convert_booleanfield_value(
            connection.ops, 0, column, connection) is False
        assert [row[0] for row in sql.decode(Message, ["seen"], [(0,), (1,), (None,)])] \
            == [False, True, None]
    # icontains(): the backend's spelling of the lookup and its LIKE escaping.
    assert "%s" in connection.ops.lookup_cast("icontains", "TextField")
    assert "%s" in connection.operators["icontains"]
    assert connection.ops.prep_for_like_query("5%_\\") == "5\\%\\_\\\\"


def test_prep_row_prepares_every_value_as_prep_does():
    class Text(str):
        pass

    names = ("folder_id", "uid", "blob_id", "internal_date", "seen", "keywords", "subject",
             "message_id", "sent_on", "envelope", "header")
    rows = [
        {"folder_id": 3, "uid": 2**40, "blob_id": "k1", "internal_date": APPENDED,
         "seen": True, "keywords": ["$x"], "subject": "Hi", "message_id": "a@b",
         "sent_on": date(2026, 1, 2), "envelope": [None, "x"], "header": b"A: b\r\n"},
        # What the fast path must leave to the field: other types, None, subclasses.
        {"folder_id": "3", "uid": True, "blob_id": Text("k1"), "internal_date": None,
         "seen": 1, "keywords": [], "subject": Text("Hi"), "message_id": "",
         "sent_on": None, "envelope": None, "header": None},
    ]
    for values in rows:
        want = [sql.prep(Message, name, values[name]) for name in names]
        got = sql.prep_row(Message, names, values)
        # Postgres wraps JSON in psycopg's Jsonb, which compares by identity: its .obj.
        assert [getattr(v, "obj", v) for v in got] == [getattr(v, "obj", v) for v in want]
        assert [type(v) for v in got] == [type(v) for v in want]


def test_a_renamed_field_fails_when_the_statement_is_built():
    with pytest.raises(FieldDoesNotExist):
        sql.render("SELECT {message.no_such_field} FROM {message}", message=Message)
    assert sql.render("{message}.{message.folder_id}", message=Message) == (
        f"{connection.ops.quote_name('mailcore_message')}."
        f"{connection.ops.quote_name('folder_id')}")


def test_statements_are_built_once_per_database_vendor():
    built = []

    @sql.statements
    def build(arg: int) -> list:
        built.append(arg)
        return [arg]

    assert build(1) is build(1)
    assert build(2) == [2]
    assert built == [1, 2]
