"""The outbound queue: delivery to the next hop, retries with backoff, and bounces (DSN)."""

from __future__ import annotations

import email
from datetime import timedelta

import pytest
from django.utils import timezone

from mailcore import directory
from mailcore.models import Message, OutboundMessage, OutboundRecipient, OutboundWake
from mailcore.queue import attempts
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from tests.conftest import PASSWORD
from tests.servers import refusing_port
from tests.sink import Sink

pytestmark = pytest.mark.django_db(transaction=True)

RAW = (b"From: alice@example.test\r\nTo: carol@remote.test\r\nSubject: Lunch?\r\n"
       b"Message-ID: <lunch@example.test>\r\n\r\nAt noon?\r\n")
State = OutboundRecipient.State


@pytest.fixture
def alice(db):
    directory.add_domain("example.test")
    return directory.add_mailbox("alice@example.test", PASSWORD)


@pytest.fixture
def down():
    """A loopback port that refuses connections: a remote that is down."""
    with refusing_port() as port:
        yield port


@pytest.fixture
def sink(settings):
    with Sink() as running:
        settings.OUTBOUND_TRANSPORTS = f"remote.test=127.0.0.1:{running.port}"
        yield running


def queue(mail_from="alice@example.test", rcpts=("carol@remote.test",)) -> OutboundMessage:
    delivered = deliver(RAW, mail_from, [], rcpts)
    return OutboundMessage.objects.get(pk=delivered.outbound_id)


def make_due(message: OutboundMessage) -> None:
    message.recipients.update(next_attempt_at=timezone.now())


def inbox_dsns(mailbox) -> list[email.message.Message]:
    rows = Message.objects.filter(folder__mailbox=mailbox, folder__name="INBOX")
    return [email.message_from_bytes(blob_store().get(m.blob_id)) for m in rows]


def status_fields(dsn: email.message.Message) -> list[email.message.Message]:
    part = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    return part.get_payload()


def test_a_queued_message_is_delivered_to_the_transport(alice, sink):
    message = queue()
    attempts.attempt([message.pk])
    assert [(r.mail_from, r.rcpt_tos) for r in sink.received] == [
        ("alice@example.test", ["carol@remote.test"])]
    assert sink.received[0].data.rstrip(b"\r\n") == RAW.rstrip(b"\r\n")
    recipient = message.recipients.get()
    assert recipient.state == State.DELIVERED
    assert recipient.last_response.startswith("250")


def test_a_550_returns_a_dsn_to_the_local_sender(alice, sink):
    sink.handler.rcpt_replies.append("550 5.1.1 <carol@remote.test>: no such user")
    message = queue()
    attempts.attempt([message.pk])
    assert message.recipients.get().state == State.FAILED
    [dsn] = inbox_dsns(alice)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["To"] == "<alice@example.test>"
    per_message, per_recipient = status_fields(dsn)
    assert per_message["Reporting-MTA"].startswith("dns; ")
    assert per_recipient["Final-Recipient"] == "rfc822; carol@remote.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <carol@remote.test>: no such user")
    assert per_recipient["Remote-MTA"] == "dns; 127.0.0.1"
    headers = next(p for p in dsn.walk() if p.get_content_type() == "text/rfc822-headers")
    assert b"Subject: Lunch?" in headers.get_payload(decode=True)
    stored = Message.objects.get(folder__mailbox=alice)
    assert blob_store().get(stored.blob_id).startswith(b"From: Mail Delivery System")


def test_recipients_failing_together_get_one_dsn(alice, sink):
    sink.handler.rcpt_replies.extend(["550 5.1.1 no", "550 5.1.1 nope"])
    message = queue(rcpts=("carol@remote.test", "dave@remote.test"))
    attempts.attempt([message.pk])
    [dsn] = inbox_dsns(alice)
    finals = sorted(f["Final-Recipient"] for f in status_fields(dsn)[1:])
    assert finals == ["rfc822; carol@remote.test", "rfc822; dave@remote.test"]


def test_a_451_is_retried_later_and_delivered_once(alice, sink):
    sink.handler.rcpt_replies.append("451 4.7.1 greylisted, try later")
    message = queue()
    attempts.attempt([message.pk])
    recipient = message.recipients.get()
    assert recipient.state == State.QUEUED
    assert recipient.next_attempt_at > timezone.now() + timedelta(seconds=30)
    attempts.attempt([message.pk])  # not due yet: nothing happens
    assert sink.received == [] and message.recipients.get().attempts == 1
    make_due(message)
    attempts.attempt([message.pk])
    attempts.attempt([message.pk])
    assert len(sink.received) == 1
    assert message.recipients.get().state == State.DELIVERED
    assert inbox_dsns(alice) == []


def test_a_remote_that_is_down_is_retried_then_bounced_when_the_lifetime_ends(alice, settings,
                                                                            down):
    settings.OUTBOUND_TRANSPORTS = f"remote.test=127.0.0.1:{down}"
    message = queue()
    attempts.attempt([message.pk])
    recipient = message.recipients.get()
    assert (recipient.state, recipient.attempts) == (State.QUEUED, 1)
    assert inbox_dsns(alice) == []
    OutboundMessage.objects.filter(pk=message.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    make_due(message)
    attempts.attempt([message.pk])
    recipient.refresh_from_db()
    assert (recipient.state, recipient.attempts) == (State.FAILED, 2)
    [dsn] = inbox_dsns(alice)
    assert status_fields(dsn)[1]["Action"] == "failed"


def test_a_delay_notice_goes_out_once_after_the_delay(alice, settings, down):
    settings.OUTBOUND_TRANSPORTS = f"remote.test=127.0.0.1:{down}"
    message = queue()
    OutboundMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(hours=5))
    attempts.attempt([message.pk])
    make_due(message)
    attempts.attempt([message.pk])
    [notice] = inbox_dsns(alice)
    assert notice["Subject"].startswith("Delayed Mail")
    fields = status_fields(notice)[1]
    assert fields["Action"] == "delayed"
    assert fields["Will-Retry-Until"]


def test_a_bounce_is_never_bounced(alice, sink):
    sink.handler.rcpt_replies.append("550 5.1.1 no such user")
    message = queue(mail_from="")
    attempts.attempt([message.pk])
    recipient = message.recipients.get()
    assert recipient.state == State.FAILED and recipient.dsn_sent
    assert OutboundMessage.objects.count() == 1
    assert inbox_dsns(alice) == []


def test_a_dsn_for_a_remote_sender_is_queued_with_a_null_sender(alice, sink, settings):
    sink.handler.rcpt_replies.append("550 5.1.1 no such user")
    settings.OUTBOUND_TRANSPORTS += f",elsewhere.test=127.0.0.1:{sink.port}"
    message = queue(mail_from="someone@elsewhere.test")
    attempts.attempt([message.pk])
    dsn_message = OutboundMessage.objects.exclude(pk=message.pk).get()
    assert dsn_message.mail_from == ""
    assert dsn_message.recipients.get().address == "someone@elsewhere.test"
    attempts.attempt([dsn_message.pk])
    assert sink.received[-1].mail_from == "<>"  # aiosmtpd's spelling of the null path
    assert sink.received[-1].rcpt_tos == ["someone@elsewhere.test"]


def test_several_messages_to_one_domain_share_a_connection(alice, sink):
    first, second = queue(), queue(rcpts=("dave@remote.test",))
    attempts.attempt([first.pk, second.pk])
    assert len(sink.received) == 2
    assert sink.handler.connections == 1


def test_a_leased_recipient_is_not_claimed_twice(alice):
    message = queue()
    assert len(attempts.claim([message.pk])) == 1
    assert attempts.claim([message.pk]) == []
    message.recipients.update(leased_until=timezone.now() - timedelta(seconds=1))
    assert len(attempts.claim([message.pk])) == 1


def test_the_retry_schedule_backs_off_then_stays_hourly(settings):
    settings.OUTBOUND_RETRY_DELAYS = [60, 300, 900, 1800, 3600]
    assert [attempts.retry_delay(n) for n in range(1, 8)] == [
        60, 300, 900, 1800, 3600, 3600, 3600]


def test_failed_recipients_and_their_bounce_are_counted_for_the_dashboard(alice, sink):
    from mailcore.models import TrafficCount

    sink.handler.rcpt_replies.extend(["250 2.1.5 OK", "550 5.1.1 no"])
    message = queue(rcpts=("carol@remote.test", "dave@remote.test"))
    attempts.attempt([message.pk])
    counts = dict(TrafficCount.objects.values_list("kind", "count"))
    # "sent" counts what users submit, not deliveries; the DSN is system mail.
    assert counts == {"bounced": 1, "system": 1}


# Draining the queue: what the workers do when woken -------------------------------------------

def test_a_drain_takes_the_due_queue_oldest_first_and_hands_on_a_full_batch(alice, sink):
    messages = [queue(rcpts=(f"r{n}@remote.test",)) for n in range(5)]
    handed_on = []
    assert attempts.drain(3, more=lambda: handed_on.append(True)) == 3
    assert handed_on == [True]
    states = [m.recipients.get().state for m in messages]
    assert states == [State.DELIVERED] * 3 + [State.QUEUED] * 2
    assert sink.handler.connections == 1
    assert attempts.drain(3, more=lambda: handed_on.append(True)) == 2
    assert handed_on == [True]  # not full: nothing left for another worker
    assert [m.recipients.get().state for m in messages] == [State.DELIVERED] * 5
    assert attempts.drain(3, more=lambda: handed_on.append(True)) == 0


def test_a_drain_leaves_recipients_not_due_or_leased_to_another_worker(alice, sink):
    later, leased, due = queue(), queue(), queue()
    later.recipients.update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    leased.recipients.update(leased_until=timezone.now() + timedelta(minutes=5))
    assert attempts.drain(10, more=lambda: None) == 1
    assert [m.recipients.get().state for m in (later, leased, due)] == [
        State.QUEUED, State.QUEUED, State.DELIVERED]
    assert leased.recipients.get().attempts == 0


def test_a_drain_records_a_retry_and_a_bounce_per_recipient(alice, sink):
    sink.handler.rcpt_replies.extend(["451 4.7.1 greylisted", "550 5.1.1 no such user"])
    greylisted, unknown = queue(), queue(rcpts=("dave@remote.test",))
    assert attempts.drain(10, more=lambda: None) == 2
    retry = greylisted.recipients.get()
    assert (retry.state, retry.status, retry.attempts) == (State.QUEUED, "4.7.1", 1)
    assert retry.next_attempt_at > timezone.now() + timedelta(seconds=30)
    assert retry.leased_until is None
    failed = unknown.recipients.get()
    assert (failed.state, failed.last_response) == (State.FAILED, "550 5.1.1 no such user")
    assert failed.dsn_sent
    assert len(inbox_dsns(alice)) == 1


def test_an_outcome_does_not_undo_an_operators_bounce_meanwhile(alice, sink):
    message = queue()
    [recipient] = attempts.claim([message.pk])
    message.recipients.update(state=State.FAILED, last_response="bounced by operator")
    attempts.record([recipient], {recipient.pk: attempts.Outcome(250, "2.0.0 OK", "mx")})
    stored = message.recipients.get()
    assert (stored.state, stored.last_response) == (State.FAILED, "bounced by operator")


def test_mail_wakes_the_workers_once_until_a_drain_begins(db, settings):
    from mailcore.queue import wake

    assert wake.ask() is True  # no drain asked yet: publish one
    assert wake.ask() is False  # that one will take this mail too
    wake.begin()
    assert wake.ask() is True  # mail after a drain's claim asks for the next drain
    wake.cancel()  # its publishing failed
    assert wake.ask() is True
    OutboundWake.objects.update(kicked_at=timezone.now() - wake.STALE - timedelta(seconds=1))
    assert wake.ask() is True  # a drain asked long ago and never begun was lost


# PIPELINING (RFC 2920): commands sent together, replies read in order ----------------------

DOTTED = RAW.replace(b"At noon?\r\n", b"At noon?\r\n.hidden dot line\r\n..two dots\r\n")


def test_a_pipelining_next_hop_gets_the_outcome_of_each_recipient(alice, sink):
    sink.handler.pipelining = True
    sink.handler.rcpt_replies.extend(["250 2.1.5 OK", "550 5.1.1 no such user",
                                      "451 4.7.1 greylisted"])
    mixed = OutboundMessage.objects.get(pk=deliver(
        DOTTED, "alice@example.test", [],
        ["carol@remote.test", "dave@remote.test", "erin@remote.test"]).outbound_id)
    after = queue(rcpts=("frank@remote.test",))
    attempts.attempt([mixed.pk, after.pk])
    outcomes = {r.address: (r.state, r.last_response) for r in mixed.recipients.all()}
    assert outcomes == {
        "carol@remote.test": (State.DELIVERED, "250 2.0.0 OK"),
        "dave@remote.test": (State.FAILED, "550 5.1.1 no such user"),
        "erin@remote.test": (State.QUEUED, "451 4.7.1 greylisted"),
    }
    assert after.recipients.get().state == State.DELIVERED  # the session stayed in step
    assert sink.handler.connections == 1
    first, second = sink.received
    assert first.rcpt_tos == ["carol@remote.test"]
    assert first.data.rstrip(b"\r\n") == DOTTED.rstrip(b"\r\n")
    assert second.rcpt_tos == ["frank@remote.test"]


def test_a_pipelined_message_nobody_accepts_leaves_the_session_usable(alice, sink):
    sink.handler.pipelining = True
    sink.handler.rcpt_replies.extend(["550 5.1.1 no", "550 5.1.1 nope"])
    refused = queue(rcpts=("carol@remote.test", "dave@remote.test"))
    after = queue(rcpts=("frank@remote.test",))
    attempts.attempt([refused.pk, after.pk])
    assert {r.state for r in refused.recipients.all()} == {State.FAILED}
    assert after.recipients.get().state == State.DELIVERED
    assert [r.rcpt_tos for r in sink.received] == [["frank@remote.test"]]


def test_a_pipelined_message_refused_after_its_content_is_retried(alice, sink):
    sink.handler.pipelining = True
    sink.handler.data_replies.append("452 4.3.1 insufficient storage")
    message = queue()
    attempts.attempt([message.pk])
    recipient = message.recipients.get()
    assert (recipient.state, recipient.status) == (State.QUEUED, "4.3.1")
    assert sink.received == []


def test_a_next_hop_offering_starttls_gets_the_message_encrypted_unverified(alice, settings):
    # RFC 3207 section 4.1 between MTAs: a self-signed certificate does not stop delivery.
    from mailcore.tls import server_context

    with Sink(tls_context=server_context()) as tls_sink:
        settings.OUTBOUND_TRANSPORTS = f"remote.test=127.0.0.1:{tls_sink.port}"
        message = queue()
        attempts.attempt([message.pk])
        assert message.recipients.get().state == State.DELIVERED
        assert [r.tls for r in tls_sink.received] == [True]


def test_a_wake_up_soon_after_the_last_drain_waits_to_gather_company(db, monkeypatch):
    from mailcore.queue import wake

    waits: list[float] = []
    monkeypatch.setattr(wake.time, "sleep", waits.append)
    wake.begin(gather=1.0)  # not woken: nothing to wait for
    wake.ask()
    wake.begin(gather=1.0)  # the first drain in a while leaves at once
    assert waits == []
    wake.ask()
    wake.begin(gather=1.0)  # a stream of mail: this one waits out the rest of the second
    [wait] = waits
    assert 0 < wait <= 1.0
    assert wake.ask() is True  # and, begun, lets the next mail wake the worker again


def test_a_slow_destination_does_not_hold_up_the_rest_of_a_drain(alice, sink, settings):
    """A next hop that accepts the connection and never greets holds its own mail only."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    released = threading.Event()
    fast_first = []

    def silent_peer() -> None:
        conn, _ = listener.accept()
        with conn:
            # Stay silent until the other destination's message has arrived (or give up).
            for _ in range(200):
                if sink.received:
                    fast_first.append(True)
                    break
                if released.wait(0.05):
                    break
    peer = threading.Thread(target=silent_peer, daemon=True)
    peer.start()
    settings.OUTBOUND_TIMEOUT = 30
    settings.OUTBOUND_TRANSPORTS += f",slow.test=127.0.0.1:{listener.getsockname()[1]}"
    slow = queue(rcpts=("erin@slow.test",))  # the older: first in the drain's batch
    fast = queue()
    try:
        assert attempts.drain(10, more=lambda: None) == 2
    finally:
        released.set()
        peer.join(5)
        listener.close()
    assert fast_first == [True]
    assert fast.recipients.get().state == State.DELIVERED
    waiting = slow.recipients.get()
    assert (waiting.state, waiting.attempts) == (State.QUEUED, 1)


def test_destinations_at_once_of_one_sends_in_turn(alice, sink, settings):
    settings.OUTBOUND_DESTINATIONS_AT_ONCE = 1
    settings.OUTBOUND_TRANSPORTS += f",elsewhere.test=127.0.0.1:{sink.port}"
    queue(), queue(rcpts=("bob@elsewhere.test",))
    assert attempts.drain(10, more=lambda: None) == 2
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [
        "bob@elsewhere.test", "carol@remote.test"]
