"""Blobs on S3-compatible storage (a real `rclone serve s3` on loopback): the store's contract."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
import tracemalloc
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from mailcore import directory
from mailcore.models import Blob, Message
from mailcore.store import s3
from mailcore.store.blobs import blob_store, collect_orphans, open_store
from mailcore.store.delivery import deliver
from mailcore.store.folders import INBOX, lock_folder
from mailcore.store.messages import expunge
from mailcore.store.messages import read as read_message
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
                                                                         s3_server, settings):
    settings.IMAP_EXPUNGED_KEEP = 0  # no IMAP session is left to read the expunged one
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


# The local read cache ---------------------------------------------------------------------

@pytest.fixture
def cached(s3_blobs, settings, tmp_path):
    settings.BLOB_CACHE_BYTES = 64 * 1024
    settings.BLOB_CACHE_DIR = tmp_path / "blob-cache"
    store = blob_store()
    reads = []
    store._client.meta.events.register("provide-client-params.s3.GetObject",
                                       lambda params, **_: reads.append(params["Key"]))
    return store, reads


def test_a_cached_blob_is_read_from_local_disk_the_second_time(cached):
    store, reads = cached
    key = store.put(RAW)
    assert store.get(key) == RAW
    assert store.get(key) == RAW
    assert len(reads) == 1


def test_a_damaged_cache_file_is_a_miss_not_a_wrong_message(cached, settings):
    store, reads = cached
    key = store.put(RAW)
    store.get(key)
    [cached_file] = [p for p in settings.BLOB_CACHE_DIR.rglob("*") if p.is_file()]
    cached_file.write_bytes(b"torn")
    assert store.get(key) == RAW
    assert len(reads) == 2


def test_the_cache_stays_within_its_size_and_keeps_what_was_read_last(cached, settings):
    store, reads = cached
    hot = store.put(b"hot " * 1000)
    keys = [store.put(bytes([n]) * 7000) for n in range(30)]  # 210 KB through a 64 KB cache
    for key in keys:
        store.get(key)
        store.get(hot)  # read after each: always among the most recent
    on_disk = sum(p.stat().st_size for p in settings.BLOB_CACHE_DIR.rglob("*") if p.is_file())
    assert on_disk <= settings.BLOB_CACHE_BYTES
    reads.clear()
    store.get(hot)
    assert reads == []


# Moving blobs between stores --------------------------------------------------------------

def _run(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("blobs", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture
def delivered_to_files(settings, s3_blobs, tmp_path):
    """Three messages delivered while blobs are files; return their raw bytes by key."""
    location, settings.BLOB_STORE = settings.BLOB_STORE, ""
    directory.add_domain("example.test")
    alice = directory.add_mailbox("alice@example.test", PASSWORD)
    raws = [RAW + str(n).encode() * (n * 1000) for n in range(3)]
    keys = [deliver(raw, "", [alice.pk]).blob_key for raw in raws]
    return location, alice, dict(zip(keys, raws, strict=True))


def test_migrate_copies_every_blob_to_s3_and_the_setting_can_then_switch(
        delivered_to_files, settings, s3_server, tmp_path):
    location, alice, raws = delivered_to_files
    output = _run("migrate", "--to", location)
    assert "Copied 3 blobs" in output
    assert "3/3 blobs" in output
    for key, raw in raws.items():
        assert s3_server.object_path(location, key).read_bytes() == raw
    settings.BLOB_STORE = location
    settings.BLOB_DIR = tmp_path / "gone"  # the files are no longer where mail is read
    for message in Message.objects.all():
        assert read_message(message) == raws[message.blob_id]


def test_migrate_resumes_without_copying_again(delivered_to_files, s3_server):
    location, alice, raws = delivered_to_files
    first, *_ = sorted(raws)
    store = blob_store()
    s3_store = open_store(location)
    s3_store.write(first, store.read(first))  # as if an earlier run stopped after one blob
    deliver(RAW + b"arrived meanwhile", "", [alice.pk])
    output = _run("migrate", "--to", location)
    assert "Copied 3 blobs" in output and "1 were already there" in output
    assert "Copied 0 blobs" in _run("migrate", "--to", location)


def test_migrate_stops_at_a_blob_that_does_not_match_its_key(delivered_to_files):
    location, _, raws = delivered_to_files
    key = sorted(raws)[1]
    blob_store().path(key).write_bytes(b"bit rot")
    with pytest.raises(CommandError, match=f"blob {key} in the source does not match"):
        _run("migrate", "--to", location)
    assert open_store(location).size(key) is None


def test_migrate_moves_blobs_back_from_s3_to_files(delivered_to_files, settings, tmp_path):
    location, _, raws = delivered_to_files
    _run("migrate", "--to", location)
    settings.BLOB_STORE = location
    settings.BLOB_DIR = tmp_path / "files-again"
    assert "Copied 3 blobs" in _run("migrate", "--to", "files")
    settings.BLOB_STORE = ""
    for key, raw in raws.items():
        assert blob_store().get(key) == raw


# Memory for a large message ---------------------------------------------------------------

_SEND = """
import smtplib, sys
raw = open(sys.argv[2], "rb").read()
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60) as smtp:
    smtp.sendmail("a@remote.test", ["alice@example.test"], raw)
"""


def test_a_large_message_is_received_and_stored_in_parts_with_two_copies_at_most(
        server, s3_blobs, settings, s3_server, tmp_path):
    """The whole SMTP path, measured with tracemalloc: it was 5.5 copies before 2026-12."""
    settings.BLOB_S3_PART_SIZE = 5 * 1024 * 1024
    directory.add_domain("example.test")
    directory.add_mailbox("alice@example.test", PASSWORD)
    line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"
    raw = b"Subject: big\r\n\r\n" + line * (12 * 1024 * 1024 // len(line))
    (tmp_path / "message").write_bytes(raw)
    blob_store().put(b"warm up")  # the S3 client loads its service model (MBs) once
    tracemalloc.start()  # the client is another process: only the server is measured
    try:
        subprocess.run([sys.executable, "-c", _SEND, str(server.port("smtp")),
                        str(tmp_path / "message")], check=True, timeout=120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stored = Message.objects.get()
    assert s3_server.object_path(s3_blobs, stored.blob_id).read_bytes().endswith(raw)
    assert peak < 2.5 * len(raw), peak / len(raw)


def test_blobs_init_creates_the_bucket_once(s3_blobs, settings, s3_server):
    bucket = f"init-{uuid.uuid4().hex[:12]}"
    settings.BLOB_STORE = f"s3://{bucket}/mail"
    assert f"Created bucket {bucket}." in _run("init")
    assert f"Bucket {bucket} exists." in _run("init")
    key = blob_store().put(RAW)
    assert (s3_server.root / bucket / "mail" / key[:2] / key[2:4] / key).read_bytes() == RAW


def test_credentials_the_server_does_not_know_are_refused(s3_blobs, settings):
    settings.BLOB_S3_SECRET_ACCESS_KEY = "wrong"
    with pytest.raises(OSError, match="cannot"):
        blob_store().get("0" * 64)
