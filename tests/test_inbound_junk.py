"""Filing inbound mail into Junk, and the end-of-DATA verdicts the SMTP listener applies."""

from __future__ import annotations

import asyncio

import pytest

from mailcore import hooks, tasks
from mailcore.inbound import pipeline
from mailcore.inbound.verdict import ACCEPT, Action, Verdict, combine, junk, reject, tempfail
from mailcore.models import Folder, Message
from mailcore.store.delivery import deliver
from tests.mailboxes import inbox, raw_of
from tests.servers import RawClient

RAW = b"From: someone@remote.test\r\nTo: alice@example.test\r\nSubject: Hi\r\n\r\nBody\r\n"


def junk_messages(mailbox) -> list[Message]:
    return list(Message.objects.filter(folder__mailbox=mailbox,
                                       folder__special_use=Folder.SpecialUse.JUNK)
                .order_by("uid"))


# deliver(junk=True) ------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_junk_delivery_files_the_message_in_each_mailboxs_junk_folder(alice, bob):
    delivered = deliver(RAW, "someone@remote.test", [alice.pk, bob.pk], junk=True)
    assert inbox(alice) == [] and inbox(bob) == []
    for mailbox in (alice, bob):
        (message,) = junk_messages(mailbox)
        assert message.folder.name == "Junk" and message.uid == 1
        assert raw_of(message) == RAW
    assert len(delivered.message_ids) == 2
    alice.refresh_from_db()
    assert alice.used_bytes == len(RAW)  # Junk counts against the quota as any folder


@pytest.mark.django_db(transaction=True)
def test_junk_goes_to_the_folder_marked_junk_whatever_its_name(alice):
    Folder.objects.filter(mailbox=alice, name="Junk").update(name="Spam")
    deliver(RAW, "someone@remote.test", [alice.pk], junk=True)
    (message,) = junk_messages(alice)
    assert message.folder.name == "Spam"
    assert not Folder.objects.filter(mailbox=alice, name="Junk").exists()


@pytest.mark.django_db(transaction=True)
def test_a_mailbox_without_a_junk_folder_gets_the_standard_one(alice):
    Folder.objects.filter(mailbox=alice, name="Junk").delete()
    deliver(RAW, "someone@remote.test", [alice.pk], junk=True)
    deliver(RAW + b"2", "someone@remote.test", [alice.pk], junk=True)
    folder = Folder.objects.get(mailbox=alice, name="Junk")
    assert folder.special_use == Folder.SpecialUse.JUNK
    assert [m.uid for m in junk_messages(alice)] == [1, 2]
    assert folder.uidvalidity > 0


@pytest.mark.django_db(transaction=True)
def test_a_folder_named_junk_without_the_mark_is_used_not_duplicated(alice):
    Folder.objects.filter(mailbox=alice, name="Junk").update(special_use="")
    deliver(RAW, "someone@remote.test", [alice.pk], junk=True)
    (folder,) = Folder.objects.filter(mailbox=alice, name="Junk")
    assert Message.objects.get(folder=folder).blob_id


@pytest.mark.django_db(transaction=True)
def test_junk_arrivals_are_reported_as_junk_and_get_no_vacation_reply(alice, monkeypatch):
    seen: list[hooks.Arrival] = []
    monkeypatch.setattr(hooks.installed, "arrived", seen.append)
    deliver(RAW, "someone@remote.test", [alice.pk], junk=True)
    deliver(RAW + b"2", "someone@remote.test", [alice.pk])
    assert [a.junk for a in seen] == [True, False]
    asked: list[list[int]] = []
    monkeypatch.setattr("mailcore.sending.vacation.away", lambda ids: asked.append(ids) or [])
    tasks.HOOKS.arrived(seen[0])
    assert asked == []  # not even looked up
    tasks.HOOKS.arrived(seen[1])
    assert asked == [[alice.pk]]


# Verdicts ----------------------------------------------------------------------------------

def test_the_stronger_action_stands_and_headers_and_results_add_up():
    first = Verdict(headers=(b"A: 1\r\n",), results=(("spf", "pass"),))
    second = junk("DMARC policy quarantine", headers=(b"B: 2\r\n",),
                  results=(("dmarc", "fail"),))
    total = first.then(second).then(Verdict(results=(("arc", "none"),)))
    assert total.action == Action.JUNK and total.reason == "DMARC policy quarantine"
    assert total.headers == (b"A: 1\r\n", b"B: 2\r\n")
    assert total.result("dmarc") == "fail" and total.result("arc") == "none"
    assert total.result("dkim") == ""
    assert combine([total, reject("no"), tempfail("later")]).reason == "no"
    assert combine([]) == ACCEPT


def test_refusals_carry_a_default_enhanced_status():
    assert reject("x").enhanced_status == "5.7.1"
    assert tempfail("x").enhanced_status == "4.7.1"
    assert tempfail("x", "4.4.3").enhanced_status == "4.4.3"
    assert reject("x").refused and not junk("x").refused


def test_the_pipeline_stops_at_a_refusal_and_later_steps_see_earlier_results():
    ran: list[str] = []

    async def auth(incoming, so_far):
        ran.append("auth")
        return Verdict(results=(("spf", "fail"),))

    async def spam(incoming, so_far):
        ran.append(f"spam sees spf={so_far.result('spf')}")
        return reject("spam")

    async def never(incoming, so_far):
        ran.append("never")
        return ACCEPT

    incoming = pipeline.Incoming(RAW, "192.0.2.1", "mx.remote.test", "s@remote.test",
                                 ("alice@example.test",), frozenset({1}))
    verdict = asyncio.run(pipeline.judge(incoming, [auth, spam, never]))
    assert verdict.action == Action.REJECT
    assert ran == ["auth", "spam sees spf=fail"]


# The SMTP listener applies the verdict ----------------------------------------------------

@pytest.fixture
def judged(monkeypatch, alice):
    """A server whose inbound pipeline is one step returning the verdict the test sets."""
    holder: dict[str, Verdict] = {"verdict": ACCEPT}
    seen: list[pipeline.Incoming] = []

    async def step(incoming, so_far):
        seen.append(incoming)
        return holder["verdict"]

    monkeypatch.setattr(pipeline, "steps", lambda: [step])
    from tests.servers import ServerThread

    thread = ServerThread().start()
    client = RawClient(thread.port("smtp"))
    client.smtp_reply()
    client.transact("EHLO mx.remote.test", "250 ", smtp=True)
    yield client, holder, seen
    client.close()
    thread.stop()


def test_a_junk_verdict_files_the_message_in_junk_with_its_headers(judged, alice):
    client, holder, seen = judged
    holder["verdict"] = junk("spam score 9", headers=(b"X-Spam: yes\r\n",))
    assert client.send_mail(RAW, "someone@remote.test", ("alice@example.test",)).startswith(
        "250 2.0.0")
    assert inbox(alice) == []
    (message,) = junk_messages(alice)
    raw = raw_of(message)
    assert raw.startswith(b"Return-Path: <someone@remote.test>\r\nX-Spam: yes\r\nReceived: ")
    assert raw.endswith(RAW)
    (incoming,) = seen
    assert incoming.content == RAW and incoming.helo == "mx.remote.test"
    assert incoming.mail_from == "someone@remote.test"
    assert incoming.client_ip == "127.0.0.1" and incoming.mailbox_ids == {alice.pk}


def test_an_accept_verdict_delivers_to_inbox_with_its_headers(judged, alice):
    client, holder, _ = judged
    holder["verdict"] = Verdict(headers=(b"Authentication-Results: mx.test; none\r\n",))
    assert client.send_mail(RAW, "someone@remote.test", ("alice@example.test",)).startswith(
        "250 ")
    (message,) = inbox(alice)
    assert b"\r\nAuthentication-Results: mx.test; none\r\nReceived: " in raw_of(message)


def test_a_reject_verdict_is_refused_with_550_and_its_reason(judged, alice):
    client, holder, _ = judged
    holder["verdict"] = reject("DMARC policy of remote.test is reject")
    reply = client.send_mail(RAW, "someone@remote.test", ("alice@example.test",))
    assert reply == "550 5.7.1 DMARC policy of remote.test is reject"
    assert Message.objects.count() == 0
    # The session goes on: the next transaction is judged afresh.
    holder["verdict"] = ACCEPT
    assert client.send_mail(RAW, "someone@remote.test", ("alice@example.test",)).startswith(
        "250 ")
    assert len(inbox(alice)) == 1


def test_a_tempfail_verdict_answers_451_with_its_status(judged, alice):
    client, holder, _ = judged
    holder["verdict"] = tempfail("SPF record lookup failed, try again later", "4.4.3")
    reply = client.send_mail(RAW, "someone@remote.test", ("alice@example.test",))
    assert reply == "451 4.4.3 SPF record lookup failed, try again later"
    assert not Message.objects.filter(folder__mailbox=alice).exists()


def test_a_reason_with_control_characters_is_not_echoed_raw(judged, alice):
    client, holder, _ = judged
    holder["verdict"] = reject("bad\r\n250 fake")
    reply = client.send_mail(RAW, "someone@remote.test", ("alice@example.test",))
    assert reply == "550 5.7.1 bad??250 fake"
    client.transact("NOOP", "250 ", smtp=True)  # no second reply was injected
