"""The store: durable blobs, delivery once for many mailboxes, quota, and orphan collection."""

from __future__ import annotations

import importlib
import os
import time
from datetime import UTC

import pytest

from mailcore import directory
from mailcore.message.summary import summarize
from mailcore.models import Blob, Message, OutboundRecipient
from mailcore.store.blobs import blob_store, collect_orphans
from mailcore.store.delivery import QuotaExceeded, deliver
from mailcore.store.folders import INBOX, lock_folder
from mailcore.store.messages import expunge
from tests.conftest import PASSWORD

# Every test runs with blobs in files and in a real S3 server (tests/s3_server.py).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("blob_backend")]

RAW = (b"From: =?utf-8?q?J=C3=B6rg?= <j@remote.test>\r\nTo: alice@example.test\r\n"
       b"Subject: =?utf-8?b?SGVsbG8gd8O2cmxk?=\r\nMessage-ID: <m1@remote.test>\r\n"
       b"Date: Fri, 27 Nov 2026 10:00:00 +0100\r\n\r\nBody\r\n")


@pytest.fixture
def mailboxes(db):
    directory.add_domain("example.test")
    return (directory.add_mailbox("alice@example.test", PASSWORD),
            directory.add_mailbox("bob@example.test", PASSWORD))


def test_one_message_for_many_mailboxes_is_stored_once(mailboxes):
    alice, bob = mailboxes
    delivered = deliver(RAW, "j@remote.test", [alice.pk, bob.pk], ["carol@remote.test"])
    assert Blob.objects.count() == 1
    assert blob_store().get(delivered.blob_key) == RAW
    rows = Message.objects.filter(blob_id=delivered.blob_key)
    assert sorted(rows.values_list("folder__mailbox_id", flat=True)) == sorted([alice.pk, bob.pk])
    assert OutboundRecipient.objects.get().address == "carol@remote.test"
    alice.refresh_from_db()
    assert alice.used_bytes == len(RAW)


def test_uids_increase_and_modseq_moves_forward(mailboxes):
    alice, _ = mailboxes
    first = deliver(RAW, "", [alice.pk]).message_ids[0]
    second = deliver(RAW + b"2", "", [alice.pk]).message_ids[0]
    a, b = Message.objects.get(pk=first), Message.objects.get(pk=second)
    assert (a.uid, b.uid) == (1, 2)
    assert b.modseq > a.modseq
    assert a.folder.uidnext == 3 or Message.objects.get(pk=first).folder.uidnext == 3


def test_uids_are_not_reused_after_expunge(mailboxes):
    alice, _ = mailboxes
    first = deliver(RAW, "", [alice.pk]).message_ids[0]
    from django.db import transaction
    with transaction.atomic():
        expunge(lock_folder(alice.pk, INBOX), [first])
    again = deliver(RAW, "", [alice.pk]).message_ids[0]
    assert Message.objects.get(pk=again).uid == 2
    alice.refresh_from_db()
    assert alice.used_bytes == len(RAW)


def test_a_message_that_does_not_fit_is_refused_and_nothing_is_stored(mailboxes):
    alice, bob = mailboxes
    alice.quota_bytes = len(RAW) - 1
    alice.save()
    with pytest.raises(QuotaExceeded) as refused:
        deliver(RAW, "", [alice.pk, bob.pk])
    assert refused.value.addresses == ["alice@example.test"]
    assert Message.objects.count() == 0


def test_header_fields_are_decoded_for_listing():
    fields = summarize(RAW)
    assert fields["subject"] == "Hello wörld"
    assert fields["from_addr"] == "Jörg <j@remote.test>"
    assert fields["message_id"] == "<m1@remote.test>"
    assert fields["sent_date"].isoformat() == "2026-11-27T10:00:00+01:00"


def test_broken_headers_do_not_stop_delivery():
    fields = summarize(b"Subject: =?bogus?x?zz?=\r\nDate: not a date\r\nFrom\r\n\xff\xfe\r\n")
    assert fields["sent_date"] is None
    assert isinstance(fields["subject"], str)


def test_orphan_blobs_are_collected_but_referenced_ones_stay(mailboxes, blob_backend, settings):
    settings.IMAP_EXPUNGED_KEEP = 0  # no IMAP session is left to read the expunged one
    alice, _ = mailboxes
    kept = deliver(RAW, "", [alice.pk])
    orphan = deliver(RAW + b"orphan", "", [alice.pk])
    from django.db import transaction
    with transaction.atomic():
        expunge(lock_folder(alice.pk, INBOX), orphan.message_ids)
    if blob_backend == "files":  # S3: the row's created_at is the age
        old = time.time() - 7200
        os.utime(blob_store().path(orphan.blob_key), (old, old))
    Blob.objects.update(created_at="2000-01-01T00:00:00Z")
    assert collect_orphans(grace_seconds=3600) == 1
    assert blob_store().size(orphan.blob_key) is None
    assert blob_store().get(kept.blob_key) == RAW
    assert list(Blob.objects.values_list("key", flat=True)) == [kept.blob_key]


def test_a_recently_touched_blob_file_survives_collection(mailboxes):
    store = blob_store()
    key = store.put(b"fresh")
    assert not store.discard_if_stale(key, 3600)
    assert store.get(key) == b"fresh"


def test_the_sent_day_is_the_date_as_written_in_the_header():
    fields = summarize(b"Date: Sun, 25 Mar 2007 00:00 +0200\r\n\r\n")
    assert fields["sent_on"].isoformat() == "2007-03-25"
    assert fields["sent_date"].astimezone(UTC).date().isoformat() == "2007-03-24"


def test_the_migration_takes_the_sent_day_of_stored_mail_from_its_envelope():
    migration = importlib.import_module("mailcore.migrations.0013_message_sent_on")
    utc = summarize(b"Date: Sun, 25 Mar 2007 00:00 +0200\r\n\r\n")["sent_date"]
    day = migration.header_day(["Sun, 25 Mar 2007 00:00 +0200", "s"], utc)
    assert day.isoformat() == "2007-03-25"
    assert migration.header_day([None, "s"], utc).isoformat() == "2007-03-24"  # as before
