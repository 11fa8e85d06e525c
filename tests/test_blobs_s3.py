"""Blobs on S3-compatible storage (a real `rclone serve s3` on loopback): the store's contract."""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from mailcore import directory
from mailcore.models import Blob, Message
from mailcore.store import s3
from mailcore.store.blobs import blob_store, collect_orphans
from mailcore.store.delivery import deliver
from mailcore.store.folders import INBOX, lock_folder
from mailcore.store.messages import expunge
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

RAW = b"From: a@remote.test\r\nSubject: in a bucket\r\n\r\nbody\r\n"


@pytest.fixture
def alice(db, s3_blobs):
    directory.add_domain("example.test")
    return directory.add_mailbox("alice@example.test", PASSWORD)


def test_the_setting_chooses_the_object_store(s3_blobs, s3_server):
    store = blob_store()
    assert isinstance(store, s3.S3BlobStore)
    key = store.put(RAW)
    assert key == hashlib.sha256(RAW).hexdigest()
    # The object is in the server's bucket, under the prefix, and nothing went to BLOB_DIR.
    assert s3_server.object_path(s3_blobs, key).read_bytes() == RAW
    assert store.get(key) == RAW


def test_a_delivered_message_is_in_the_bucket_before_deliver_returns(alice, s3_blobs,
                                                                     s3_server):
    delivered = deliver(RAW, "a@remote.test", [alice.pk])
    assert s3_server.object_path(s3_blobs, delivered.blob_key).read_bytes() == RAW
    assert Message.objects.get().blob_id == delivered.blob_key


def test_a_missing_object_reads_as_a_missing_file(s3_blobs):
    with pytest.raises(FileNotFoundError):
        blob_store().get("0" * 64)


def test_an_unreachable_store_fails_the_delivery_and_stores_no_message(alice, settings):
    settings.BLOB_S3_ENDPOINT = "http://127.0.0.1:1"
    with pytest.raises(OSError):
        deliver(RAW, "a@remote.test", [alice.pk])
    assert Message.objects.count() == 0


def test_a_large_message_goes_up_in_parts_without_a_second_copy(alice, s3_blobs, s3_server,
                                                                settings):
    settings.BLOB_S3_PART_SIZE = 5 * 1024 * 1024
    raw = b"Subject: big\r\n\r\n" + b"0123456789abcde\r\n" * (17 * 1024 * 1024 // 17)
    store = blob_store()
    parts = []
    store._client.meta.events.register("provide-client-params.s3.UploadPart",
                                       lambda params, **_: parts.append(params["PartNumber"]))
    tracemalloc.start()
    try:
        key = store.put(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parts == [1, 2, 3, 4]
    # One part at a time at most, never the message again.
    assert peak < len(raw) / 3, peak
    assert s3_server.object_path(s3_blobs, key).read_bytes() == raw


def test_orphans_are_collected_from_the_bucket_and_referenced_blobs_stay(alice, s3_blobs,
                                                                         s3_server):
    kept = deliver(RAW, "", [alice.pk])
    orphan = deliver(RAW + b"orphan", "", [alice.pk])
    from django.db import transaction
    with transaction.atomic():
        expunge(lock_folder(alice.pk, INBOX), orphan.message_ids)
    Blob.objects.update(created_at="2000-01-01T00:00:00Z")
    assert collect_orphans(grace_seconds=3600) == 1
    assert not s3_server.object_path(s3_blobs, orphan.blob_key).exists()
    assert blob_store().get(kept.blob_key) == RAW
    assert list(Blob.objects.values_list("key", flat=True)) == [kept.blob_key]


def test_an_object_without_a_row_is_collected_after_a_day(s3_blobs, monkeypatch):
    store = blob_store()
    key = store.put(b"no row will point here")
    Blob.objects.all().delete()  # as if the process died before its rows were committed
    assert collect_orphans() == 0  # too young
    later = timezone.now() + timedelta(days=2)
    monkeypatch.setattr(s3, "_now", lambda: later)
    assert collect_orphans() == 1
    assert store.size(key) is None


def test_storing_again_the_content_of_an_old_orphan_keeps_it(alice, s3_blobs):
    """The collector chose the blob as an orphan; a delivery of the same bytes came first."""
    orphan = deliver(RAW, "", [alice.pk])
    from django.db import transaction
    with transaction.atomic():
        expunge(lock_folder(alice.pk, INBOX), orphan.message_ids)
    Blob.objects.update(created_at="2000-01-01T00:00:00Z")
    again = deliver(RAW, "", [alice.pk])  # claims the key: created_at moves to now
    assert collect_orphans(grace_seconds=3600) == 0
    assert blob_store().get(again.blob_key) == RAW


def test_a_claim_waits_for_the_collector_and_stores_the_object_again(s3_blobs, settings):
    """The collector holds the key's placeholder row while deleting: a put waits for it.

    (On Postgres for the row's key; on SQLite for the one writer's lock.)
    """
    store = blob_store()
    key = store.put(RAW)
    Blob.objects.all().delete()
    deleting = threading.Event()
    release = threading.Event()
    real_delete = store.delete

    def slow_delete(k: str) -> None:
        deleting.set()
        release.wait(10)
        real_delete(k)

    store.delete = slow_delete

    def collect() -> None:
        store.discard_if_stale(key, 0)
        connection.close()

    collector = threading.Thread(target=collect)
    collector.start()
    assert deleting.wait(10)
    put_done = threading.Event()

    def writer() -> None:
        store.put(RAW)
        put_done.set()
        connection.close()

    threading.Thread(target=writer).start()
    assert not put_done.wait(0.5), "the claim did not wait for the collector's transaction"
    release.set()
    collector.join(10)
    assert put_done.wait(10)
    assert store.get(key) == RAW
    assert Blob.objects.filter(pk=key).exists()


def test_a_claimed_key_is_not_deleted(s3_blobs):
    store = blob_store()
    key = store.put(RAW)  # its row exists: a writer has claimed it
    assert not store.discard_if_stale(key, 0)
    assert store.get(key) == RAW
