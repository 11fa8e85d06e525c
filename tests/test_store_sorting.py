"""The store's sorting and threading services, and the migration that keys older messages."""

from __future__ import annotations

import importlib

from django.apps import apps

from mailcore.message.searchkeys import AllKey, HeaderKey
from mailcore.models import Message
from mailcore.store import sorting, threading
from mailcore.store.delivery import deliver
from mailcore.store.sorting import Criterion
from tests.test_imap_sort import raw


def _inbox(alice) -> int:
    return Message.objects.filter(folder__mailbox=alice).first().folder_id


def test_sort_orders_matches_and_breaks_ties_by_uid(alice):
    for subject in ("b", "Re: a", "B", "c"):
        deliver(raw(subject, 1), "s@remote.test", [alice.pk])
    folder = _inbox(alice)
    found = sorting.sort(folder, [Criterion("SUBJECT")], AllKey(), 10)
    assert [uid for uid, _ in found] == [2, 1, 3, 4]
    found = sorting.sort(folder, [Criterion("SUBJECT", reverse=True)], AllKey(), 10)
    assert [uid for uid, _ in found] == [4, 1, 3, 2]  # equal keys stay in mailbox order
    found = sorting.sort(folder, [Criterion("SUBJECT")], HeaderKey("subject", "b"), 10)
    assert [uid for uid, _ in found] == [1, 3]
    modseqs = dict(Message.objects.filter(folder_id=folder).values_list("uid", "modseq"))
    # Only UIDs up to max_uid (what the session has seen), with their modseqs.
    assert sorting.sort(folder, [Criterion("SUBJECT")], AllKey(), 2) == \
        [(2, modseqs[2]), (1, modseqs[1])]


def test_conversation_finds_relatives_in_order(alice, bob):
    messages = [
        raw("plans", 1, message_id="p@x"),
        raw("unrelated", 2, message_id="u@x"),
        raw("Re: plans", 3, message_id="r@x", extra="In-Reply-To: <p@x>\r\n"),
        raw("Re: plans", 4, message_id="s@x", extra="References: <p@x> <r@x>\r\n"),
    ]
    for m in messages:
        deliver(m, "s@remote.test", [alice.pk])
    deliver(raw("Re: plans", 5, message_id="b@x", extra="References: <p@x>\r\n"),
            "s@remote.test", [bob.pk])
    folder = _inbox(alice)
    assert threading.conversation(folder, 3) == [1, 3, 4]
    assert threading.conversation(folder, 2) == [2]
    assert threading.conversation(folder, 99) == []


def test_migration_fills_the_keys_of_older_messages(alice):
    deliver(raw("Re: old one", 1, sender="Old <old@remote.test>",
                extra="References: <a@x> <b@x>\r\n"), "s@remote.test", [alice.pk])
    expected = Message.objects.values(*sorting.CRITERIA["SUBJECT"], "sort_from",
                                      "sort_display_from", "thread_refs").get()
    assert expected == {"sort_subject": "OLD ONE", "sort_from": "OLD",
                        "sort_display_from": "OLD", "thread_refs": "<a@x> <b@x>"}
    Message.objects.update(sort_subject="", sort_from="", sort_display_from="",
                           thread_refs="")
    migration = importlib.import_module("mailcore.migrations.0012_message_sort_keys")
    migration.fill_sort_keys(apps, None)
    assert Message.objects.values(*expected).get() == expected


def test_delivery_keeps_the_thread_root_a_conversation_is_found_by(alice):
    deliver(raw("plans", 1, message_id="p@x"), "s@remote.test", [alice.pk])
    deliver(raw("Re: plans", 2, message_id="r@x", extra="In-Reply-To: <p@x>\r\n"),
            "s@remote.test", [alice.pk])
    deliver(raw("Re: plans", 3, message_id="s@x", extra="References: <p@x> <r@x>\r\n"),
            "s@remote.test", [alice.pk])
    assert list(Message.objects.order_by("uid").values_list("thread_root", flat=True)) == [
        "<p@x>", "<p@x>", "<p@x>"]


def test_conversation_finds_replies_with_another_subject_by_their_root(alice):
    for m in (raw("plans", 1, message_id="p@x"),
              raw("changed the subject", 2, message_id="r@x",
                  extra="References: <p@x>\r\n"),
              raw("and again", 3, message_id="s@x", extra="References: <p@x> <r@x>\r\n"),
              # Its References lost their start: found through its parent, named first.
              raw("a third subject", 4, message_id="t@x", extra="In-Reply-To: <s@x>\r\n"),
              raw("unrelated", 5, message_id="q@x")):
        deliver(m, "s@remote.test", [alice.pk])
    folder = _inbox(alice)
    assert threading.conversation(folder, 1) == [1, 2, 3]
    assert threading.conversation(folder, 3) == [1, 2, 3, 4]
    # Deviation (threading.conversation): from 4, whose root is 3, under another subject,
    # its ancestors are not looked up by Message-ID.
    assert threading.conversation(folder, 4) == [4]


def test_migration_fills_the_thread_roots_of_older_messages(alice):
    deliver(raw("plans", 1, message_id="p@x"), "s@remote.test", [alice.pk])
    deliver(raw("Re: plans", 2, extra="References: <a@x> <b@x>\r\n"), "s@remote.test",
            [alice.pk])
    Message.objects.update(thread_root="")
    migration = importlib.import_module(
        "mailcore.migrations.0019_conversations_and_unread")
    migration.fill_thread_roots(apps, None)
    assert list(Message.objects.order_by("uid").values_list("thread_root", flat=True)) == [
        "<p@x>", "<a@x>"]
