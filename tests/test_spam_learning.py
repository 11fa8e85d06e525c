"""Junk that learns: moving mail into Junk teaches Rspamd spam, out of it ham, on the worker."""

from __future__ import annotations

import celery.exceptions
import httpx
import pytest
from django.test import Client
from django.urls import reverse

from mailcore import hooks, tasks
from mailcore.models import Folder, Message
from mailcore.store import messages as store_messages
from mailcore.store.delivery import deliver
from tests.imap_client import connect
from tests.servers import refusing_port
from tests.test_spam_rspamd import HAM
from tests.test_webmail_helpers import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

SPAM = (b"From: Prize Desk <winner@prizes.test>\r\nTo: alice@example.test\r\n"
        b"Subject: You have won a free cruise\r\nMessage-ID: <cruise.7@prizes.test>\r\n\r\n"
        b"Congratulations! You have been selected to receive a free luxury cruise and a cash\r\n"
        b"prize. Click the link below today to claim your reward before the offer expires,\r\n"
        b"just pay the small handling fee with your credit card details.\r\n")


@pytest.fixture
def judgements(monkeypatch) -> list[hooks.Judged]:
    seen: list[hooks.Judged] = []
    monkeypatch.setattr(hooks.installed, "judged", seen.append)
    return seen


def folder(mailbox, name: str) -> Folder:
    return Folder.objects.get(mailbox=mailbox, name=name)


def move(mailbox, source: str, target: str, copy: bool = False) -> None:
    uids = list(Message.objects.filter(folder=folder(mailbox, source)).values_list("uid",
                                                                                  flat=True))
    store_messages.copy(folder(mailbox, source).pk, uids, folder(mailbox, target).pk,
                        move=not copy)


def test_filing_into_junk_reports_spam_and_out_of_it_ham(alice, judgements):
    key = deliver(SPAM, "winner@prizes.test", [alice.pk]).blob_key
    move(alice, "INBOX", "Junk")
    move(alice, "Junk", "Archive")
    assert judgements == [hooks.Judged(alice.pk, [key], True),
                          hooks.Judged(alice.pk, [key], False)]


def test_a_copy_into_junk_counts_and_junk_to_trash_teaches_nothing(alice, judgements):
    deliver(SPAM, "winner@prizes.test", [alice.pk])
    move(alice, "INBOX", "Junk", copy=True)
    assert [j.spam for j in judgements] == [True]
    move(alice, "Junk", "Trash")
    move(alice, "INBOX", "Archive")
    move(alice, "Trash", "INBOX")
    assert [j.spam for j in judgements] == [True]


def test_any_folder_marked_junk_counts_whatever_its_name(alice, judgements):
    Folder.objects.filter(mailbox=alice, name="Junk").update(special_use="")
    Folder.objects.filter(mailbox=alice, name="Archive").update(special_use="\\Junk")
    deliver(SPAM, "winner@prizes.test", [alice.pk])
    move(alice, "INBOX", "Junk")
    assert judgements == []
    move(alice, "Junk", "Archive")
    assert [j.spam for j in judgements] == [True]


def test_imap_move_to_junk_is_reported_after_the_command(server, alice, judgements):
    key = deliver(SPAM, "winner@prizes.test", [alice.pk]).blob_key
    client = connect(server, login=True)
    client.run("SELECT INBOX")
    _, tagged = client.run("UID MOVE 1 Junk")
    assert tagged.startswith("OK")
    assert judgements == [hooks.Judged(alice.pk, [key], True)]
    client.run("SELECT Junk")
    _, tagged = client.run("UID COPY 1 INBOX")
    assert tagged.startswith("OK")
    assert [j.spam for j in judgements] == [True, False]


def test_webmail_spam_and_not_spam_buttons_teach_the_filter(alice, judgements):
    deliver(SPAM, "winner@prizes.test", [alice.pk])
    client = sign_in(Client(), "alice@example.test")
    inbox = folder(alice, "INBOX")
    page = client.get(reverse("webmail:message", args=[inbox.pk, 1])).content.decode()
    assert ">Spam</button>" in page
    client.post(reverse("webmail:act", args=[inbox.pk]), {"action": "junk", "uid": "1"})
    junk = folder(alice, "Junk")
    page = client.get(reverse("webmail:message", args=[junk.pk, 1])).content.decode()
    assert ">Not spam</button>" in page
    client.post(reverse("webmail:act", args=[junk.pk]), {"action": "notjunk", "uid": "1"})
    assert [j.spam for j in judgements] == [True, False]


def test_the_hook_queues_learning_only_when_a_controller_is_set(settings, monkeypatch):
    queued: list[tuple] = []
    monkeypatch.setattr(tasks.learn, "delay", lambda *a: queued.append(a))
    settings.RSPAMD_CONTROLLER_URL = ""
    tasks.HOOKS.judged(hooks.Judged(1, ["k"], True))
    assert queued == []
    settings.RSPAMD_CONTROLLER_URL = "http://127.0.0.1:11334"
    tasks.HOOKS.judged(hooks.Judged(1, ["k"], False))
    assert queued == [(["k"], False)]


def _learned(rspamd) -> int:
    return httpx.get(f"{rspamd.controller_url}/stat", timeout=10).json()["learned"]


def test_the_worker_teaches_rspamd_spam_and_ham(rspamd, settings, alice):
    settings.RSPAMD_CONTROLLER_URL = rspamd.controller_url
    before = _learned(rspamd)
    spam_key = deliver(SPAM, "winner@prizes.test", [alice.pk]).blob_key
    ham_key = deliver(HAM, "bob@remote.test", [alice.pk]).blob_key
    assert tasks.learn.apply(args=[[spam_key], True]).get() == 1
    assert tasks.learn.apply(args=[[ham_key], False]).get() == 1
    assert _learned(rspamd) == before + 2
    # Learning the same message again is no error; Rspamd just does not count it twice.
    assert tasks.learn.apply(args=[[spam_key], True]).get() == 0


def test_an_unreachable_controller_makes_the_task_try_again(settings, alice, monkeypatch):
    key = deliver(SPAM, "winner@prizes.test", [alice.pk]).blob_key
    with refusing_port() as port:
        settings.RSPAMD_CONTROLLER_URL = f"http://127.0.0.1:{port}"
        with pytest.raises(celery.exceptions.Retry):
            tasks.learn.apply(args=[[key], True], throw=True).get()
