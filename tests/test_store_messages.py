"""Store services for IMAP and webmail: flags with modseq, copy/move, append, expunge, folders."""

from __future__ import annotations

import asyncio

import pytest
from django.db.models import F

from mailcore import directory
from mailcore.models import Expunged, Folder, Message
from mailcore.store import events, messages
from mailcore.store.delivery import QuotaExceeded, deliver
from mailcore.store.folders import (
    FolderError,
    add_folder,
    find_folder,
    remove_folder,
    rename_folder,
    status,
    subscribe,
    subscriptions,
)
from tests.conftest import PASSWORD

# Every test runs with blobs in files and in a real S3 server (tests/s3_server.py).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("blob_backend")]
RAW = b"From: a@remote.test\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.fixture
def alice(db):
    directory.add_domain("example.test")
    return directory.add_mailbox("alice@example.test", PASSWORD)


@pytest.fixture
def inbox(alice):
    for n in range(3):
        deliver(RAW + str(n).encode(), "a@remote.test", [alice.pk])
    return find_folder(alice.pk, "inbox")


def test_snapshot_lists_messages_in_uid_order(inbox):
    state, rows = messages.snapshot(inbox.pk)
    assert [r.uid for r in rows] == [1, 2, 3]
    assert state.uidnext == 4 and state.highestmodseq >= 3
    assert all(r.flags == () for r in rows)


def test_storing_flags_bumps_modseq_and_reports_changes(inbox):
    before, _ = messages.snapshot(inbox.pk)
    updated, refused = messages.store_flags(inbox.pk, [1, 2], "add", ["\\seen", "$Label"])
    assert refused == []
    assert [u.flags for u in updated] == [("\\Seen", "$Label")] * 2
    state, changed, gone = messages.changes_since(inbox.pk, before.highestmodseq)
    assert [c.uid for c in changed] == [1, 2] and gone == []
    assert state.highestmodseq == before.highestmodseq + 1
    messages.store_flags(inbox.pk, [1], "remove", ["$Label"])
    messages.store_flags(inbox.pk, [2], "set", ["\\Flagged"])
    _, rows = messages.snapshot(inbox.pk)
    assert [r.flags for r in rows] == [("\\Seen",), ("\\Flagged",), ()]


def test_a_store_that_changes_nothing_keeps_the_modseq(inbox):
    messages.store_flags(inbox.pk, [1], "add", ["\\Seen"])
    before, _ = messages.snapshot(inbox.pk)
    messages.store_flags(inbox.pk, [1], "add", ["\\Seen"])
    assert messages.snapshot(inbox.pk)[0].highestmodseq == before.highestmodseq


def test_unchangedsince_refuses_messages_changed_later(inbox):
    _, rows = messages.snapshot(inbox.pk)
    messages.store_flags(inbox.pk, [1], "add", ["\\Seen"])
    _, refused = messages.store_flags(inbox.pk, [1, 2], "add", ["\\Flagged"],
                                      unchanged_since=rows[1].modseq)
    assert refused == [1]


def test_copy_gives_new_uids_and_counts_against_quota(alice, inbox):
    archive = find_folder(alice.pk, "Archive")
    assert messages.copy(inbox.pk, [1, 3], archive.pk) == [(1, 1), (3, 2)]
    alice.refresh_from_db()
    assert alice.used_bytes == sum(Message.objects.values_list("size", flat=True))
    assert Message.objects.filter(folder=archive).count() == 2
    alice.quota_bytes = alice.used_bytes
    alice.save()
    with pytest.raises(QuotaExceeded):
        messages.copy(inbox.pk, [2], archive.pk)


def test_move_expunges_the_source_and_keeps_quota(alice, inbox):
    archive = find_folder(alice.pk, "Archive")
    used = alice.used_bytes if alice.used_bytes else None
    alice.refresh_from_db()
    used = alice.used_bytes
    assert messages.copy(inbox.pk, [2], archive.pk, move=True) == [(2, 1)]
    assert list(Expunged.objects.filter(folder=inbox).values_list("uid", flat=True)) == [2]
    alice.refresh_from_db()
    assert alice.used_bytes == used


def test_append_stores_flags_and_date(alice):
    sent = find_folder(alice.pk, "Sent")
    validity, uid = messages.append(sent.pk, RAW, ["\\Seen", "\\Draft", "work"])
    row = Message.objects.get(folder=sent, uid=uid)
    assert validity == sent.uidvalidity
    assert messages.flags_of(row) == ("\\Seen", "\\Draft", "work")
    assert row.subject == "s"


def test_expunge_removes_only_deleted_messages(inbox):
    messages.store_flags(inbox.pk, [1, 3], "add", ["\\Deleted"])
    assert messages.expunge_deleted(inbox.pk, uids=[3]) == [3]
    assert messages.expunge_deleted(inbox.pk) == [1]
    assert [r.uid for r in messages.snapshot(inbox.pk)[1]] == [2]


def test_folders_nest_rename_and_delete(alice):
    add_folder(alice.pk, "Projects/2026/Q4")
    names = set(Folder.objects.filter(mailbox=alice).values_list("name", flat=True))
    assert {"Projects", "Projects/2026", "Projects/2026/Q4"} <= names
    with pytest.raises(FolderError) as refused:
        add_folder(alice.pk, "Projects/")
    assert refused.value.code == "ALREADYEXISTS"
    with pytest.raises(FolderError) as refused:
        remove_folder(alice.pk, "Projects")
    assert refused.value.code == "HASCHILDREN"
    rename_folder(alice.pk, "Projects", "Work/Old")
    names = set(Folder.objects.filter(mailbox=alice).values_list("name", flat=True))
    assert {"Work", "Work/Old", "Work/Old/2026", "Work/Old/2026/Q4"} <= names
    assert not {"Projects", "Projects/2026"} & names
    remove_folder(alice.pk, "Work/Old/2026/Q4")
    with pytest.raises(FolderError) as refused:
        remove_folder(alice.pk, "INBOX")
    assert refused.value.code == "CANNOT"


@pytest.mark.parametrize("bad", ["", "a//b", "/a", "a*b", "a%", "x\x00"])
def test_invalid_folder_names_are_refused(alice, bad):
    with pytest.raises(FolderError):
        add_folder(alice.pk, bad)


def test_renaming_inbox_moves_its_messages_and_leaves_it_empty(alice, inbox):
    rename_folder(alice.pk, "INBOX", "Old mail")
    old = find_folder(alice.pk, "Old mail")
    assert Message.objects.filter(folder=old).count() == 3
    assert Message.objects.filter(folder=inbox).count() == 0
    assert Expunged.objects.filter(folder=inbox).count() == 3


def test_a_recreated_folder_gets_a_new_uidvalidity(alice):
    first = add_folder(alice.pk, "Temp")
    remove_folder(alice.pk, "Temp")
    assert add_folder(alice.pk, "Temp").uidvalidity != first.uidvalidity


def test_status_counts(alice, inbox):
    messages.store_flags(inbox.pk, [1], "add", ["\\Seen"])
    subscribe(alice.pk, "INBOX", False)
    counts = status(inbox)
    assert (counts["MESSAGES"], counts["UNSEEN"], counts["UIDNEXT"]) == (3, 2, 4)
    assert counts["SIZE"] == sum(Message.objects.values_list("size", flat=True))
    assert "INBOX" not in subscriptions(alice.pk)


def test_a_change_by_another_process_before_the_first_poll_wakes_a_watcher(alice, inbox,
                                                                           settings):
    # Another process's commit tells this one nothing (no Redis here): only the poll finds
    # it, even when it lands before the poll's first look at the mailbox.
    settings.MAILCORE_CHANGE_POLL = 0.3

    def commit_elsewhere() -> None:
        Folder.objects.filter(pk=inbox.pk).update(highestmodseq=F("highestmodseq") + 1)

    async def scenario() -> bool:
        event = events.hub.watch(alice.pk)
        try:
            await asyncio.to_thread(commit_elsewhere)  # well before the first poll
            await asyncio.wait_for(event.wait(), 5)
            return True
        finally:
            events.hub.unwatch(alice.pk, event)

    assert asyncio.run(scenario())


def test_a_delivery_in_another_thread_wakes_a_watcher(alice, settings):
    settings.MAILCORE_CHANGE_POLL = 0.05

    async def scenario() -> bool:
        event = events.hub.watch(alice.pk)
        try:
            await asyncio.sleep(0.2)  # let the poller take its first look
            await asyncio.to_thread(deliver, RAW, "", [alice.pk])
            await asyncio.wait_for(event.wait(), 5)
            return True
        finally:
            events.hub.unwatch(alice.pk, event)

    assert asyncio.run(scenario())


def test_select_claims_recent_once_and_writes_only_when_there_is_something_to_claim(
        inbox, monkeypatch):
    writes = []
    real_writing = messages.dbpool.writing

    def counting_writing(*args, **kwargs):
        writes.append(args)
        return real_writing(*args, **kwargs)

    monkeypatch.setattr(messages.dbpool, "writing", counting_writing)
    first = messages.select_folder(inbox.mailbox_id, "INBOX", recent="take")
    assert first.recent == (1, 4) and len(writes) == 1
    again = messages.select_folder(inbox.mailbox_id, "INBOX", recent="take")
    assert again.recent == (4, 4) and len(writes) == 1  # nothing new: a reader only
    deliver(RAW + b"new", "a@remote.test", [inbox.mailbox_id])
    writes.clear()
    after = messages.select_folder(inbox.mailbox_id, "INBOX", recent="take")
    assert after.recent == (4, 5) and len(writes) == 1
    assert messages.claim_recent(inbox.pk, 5, take=True) == 5 and len(writes) == 1
    # A message appended and expunged (a saved draft) leaves nothing to claim.
    messages.append(inbox.pk, RAW + b"draft", ["\\Deleted"])
    messages.expunge_deleted(inbox.pk)
    writes.clear()
    last = messages.select_folder(inbox.mailbox_id, "INBOX", recent="take")
    assert last.recent == (5, 6) and writes == []
