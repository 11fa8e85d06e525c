"""The maildrop service under POP3: its exclusive lock, its listing, and the UPDATE state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailcore import directory
from mailcore.models import Expunged, Folder, Mailbox, Message
from mailcore.store import maildrop
from mailcore.store.delivery import deliver


@pytest.fixture
def mailbox(db) -> Mailbox:
    directory.add_domain("drop.test")
    return directory.add_mailbox("dana@drop.test", "secret")


def put(mailbox: Mailbox, n: int, folder: str = "INBOX") -> int:
    raw = f"Subject: {n}\r\n\r\nbody {n}\r\n".encode()
    return deliver(raw, "s@remote.test", [mailbox.pk], folder=folder).message_ids[0]


def test_a_held_lock_refuses_other_sessions_until_released(mailbox):
    assert maildrop.acquire(mailbox.pk, "one", 60)
    assert maildrop.acquire(mailbox.pk, "one", 60)  # refreshing your own lock
    assert not maildrop.acquire(mailbox.pk, "two", 60)
    maildrop.release(mailbox.pk, "two")  # not its lock: nothing happens
    assert not maildrop.acquire(mailbox.pk, "two", 60)
    maildrop.release(mailbox.pk, "one")
    assert maildrop.acquire(mailbox.pk, "two", 60)


def test_an_expired_lock_can_be_taken_over(mailbox):
    assert maildrop.acquire(mailbox.pk, "crashed", -1)
    assert maildrop.acquire(mailbox.pk, "fresh", 60)


@pytest.mark.parametrize(("holder_skew", "taker_skew"), [
    (timedelta(0), timedelta(hours=2)),  # the other node's clock runs ahead
    (-timedelta(hours=2), timedelta(0)),  # the holder's clock runs behind
])
def test_a_node_whose_clock_is_off_cannot_take_a_live_lock(mailbox, monkeypatch, holder_skew,
                                                           taker_skew):
    # The nodes share the database, not a clock: the lock's time is the database's.
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + holder_skew)
    assert maildrop.acquire(mailbox.pk, "node-a", 60)
    monkeypatch.setattr(timezone, "now", lambda: real_now() + taker_skew)
    assert not maildrop.acquire(mailbox.pk, "node-b", 60)
    with pytest.raises(maildrop.MaildropLocked):
        maildrop.update(mailbox.pk, "node-b", [])
    assert Mailbox.objects.get(pk=mailbox.pk).pop3_lock == "node-a"


def test_the_listing_is_the_inbox_oldest_first_without_hidden_messages(mailbox):
    first, hidden, last = put(mailbox, 1), put(mailbox, 2), put(mailbox, 3)
    put(mailbox, 4, folder="Sent")
    Message.objects.filter(pk=hidden).update(pop3_hidden=True)
    listing = maildrop.listing(mailbox.pk)
    assert [m.id for m in listing] == [first, last]
    validity = Folder.objects.get(mailbox=mailbox, name="INBOX").uidvalidity
    assert listing[0].uidl == f"{validity}.{Message.objects.get(pk=first).uid}"
    assert maildrop.read(listing[1]) == b"Subject: 3\r\n\r\nbody 3\r\n"


def test_update_deletes_leaving_tombstones_and_frees_the_space(mailbox):
    kept, gone = put(mailbox, 1), put(mailbox, 2)
    size = Message.objects.get(pk=gone).size
    used = Mailbox.objects.get(pk=mailbox.pk).used_bytes
    assert maildrop.acquire(mailbox.pk, "s", 60)
    maildrop.update(mailbox.pk, "s", [gone])
    assert list(Message.objects.filter(folder__mailbox=mailbox).values_list("pk", flat=True)) \
        == [kept]
    assert Expunged.objects.filter(folder__mailbox=mailbox).count() == 1
    after = Mailbox.objects.get(pk=mailbox.pk)
    assert after.used_bytes == used - size
    assert after.pop3_lock == "" and after.pop3_lock_until is None


def test_update_under_keep_marks_seen_and_hides_with_a_new_modseq(mailbox):
    directory.set_pop3_policy(mailbox, Mailbox.Pop3Policy.KEEP)
    message_id = put(mailbox, 1)
    before = Message.objects.get(pk=message_id).modseq
    maildrop.update(mailbox.pk, "s", [message_id])
    message = Message.objects.get(pk=message_id)
    assert message.seen and message.pop3_hidden and message.modseq > before
    assert maildrop.listing(mailbox.pk) == []
    assert not Expunged.objects.filter(folder__mailbox=mailbox).exists()


def test_update_changes_nothing_once_another_session_holds_the_lock(mailbox):
    message_id = put(mailbox, 1)
    assert maildrop.acquire(mailbox.pk, "lapsed", -1)
    assert maildrop.acquire(mailbox.pk, "newer", 60)
    with pytest.raises(maildrop.MaildropLocked):
        maildrop.update(mailbox.pk, "lapsed", [message_id])
    assert Message.objects.filter(pk=message_id).exists()
    assert Mailbox.objects.get(pk=mailbox.pk).pop3_lock == "newer"
