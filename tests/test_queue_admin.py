"""Tests for the outbound queue in the operator's Django admin and the operations behind it."""

from __future__ import annotations

import email
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mailcore import directory
from mailcore.models import Message, OutboundMessage, OutboundRecipient
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver

pytestmark = pytest.mark.django_db

State = OutboundRecipient.State
RAW = (b"From: alice@example.test\r\nTo: carol@remote.test\r\nSubject: Lunch?\r\n"
       b"Message-ID: <lunch@example.test>\r\n\r\nAt noon?\r\n")
CHANGELIST = "admin:mailcore_outboundmessage_changelist"


@pytest.fixture
def carol(client: Client) -> Client:
    """Return a client logged in as carol, a staff superuser."""
    user = get_user_model().objects.create_superuser("carol", "carol@host.test", "carol-pw")
    client.force_login(user)
    return client


@pytest.fixture
def alice(db):
    directory.add_domain("example.test")
    return directory.add_mailbox("alice@example.test", "pw")


def queue(mail_from: str = "alice@example.test",
          rcpts: tuple[str, ...] = ("carol@remote.test",)) -> OutboundMessage:
    return OutboundMessage.objects.get(pk=deliver(RAW, mail_from, [], rcpts).outbound_id)


def deferred(message: OutboundMessage, response: str = "451 4.7.1 greylisted") -> None:
    """Record a failed attempt, as the worker would, with the next one an hour away."""
    message.recipients.update(
        attempts=1, last_response=response, status="4.7.1", remote_mta="mx.remote.test",
        next_attempt_at=timezone.now() + timedelta(hours=1))


def listed(client: Client, **params: str) -> list[int]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return sorted(m.pk for m in response.context["cl"].result_list)


def act(client: Client, action: str, *messages: OutboundMessage, **extra: str):
    return client.post(reverse(CHANGELIST), {
        "action": action, "_selected_action": [str(m.pk) for m in messages], **extra,
    }, follow=True)


@pytest.fixture
def published(monkeypatch) -> list[list[int]]:
    """Record the batches handed to the workers instead of sending them to a broker."""
    calls: list[list[int]] = []
    monkeypatch.setattr("mailcore.hooks.installed.outbound_due", calls.append)
    return calls


def inbox(mailbox) -> list[email.message.Message]:
    rows = Message.objects.filter(folder__mailbox=mailbox, folder__name="INBOX")
    return [email.message_from_bytes(blob_store().get(m.blob_id)) for m in rows]


def test_it_refuses_the_queue_to_an_anonymous_visitor(client: Client) -> None:
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_it_lists_each_recipients_state_attempts_response_and_remote_mta(carol, alice) -> None:
    message = queue(rcpts=("carol@remote.test", "dave@remote.test"))
    deferred(message)
    response = carol.get(reverse(CHANGELIST))
    assert response.status_code == 200
    [row] = response.context["cl"].result_list
    assert row.pk == message.pk
    page = response.content.decode()
    for text in ("alice@example.test", "carol@remote.test", "dave@remote.test", "Queued",
                 "451 4.7.1 greylisted", 'title="mx.remote.test: 451 4.7.1 greylisted"'):
        assert text in page
    assert row.next_attempt_at == message.recipients.first().next_attempt_at


def test_the_list_keeps_to_few_columns_and_cuts_long_values(carol, alice) -> None:
    long_response = "550 5.7.1 " + "policy text " * 30
    message = queue(rcpts=("someone.with.a.very.long.name@subdomain.remote.test",))
    deferred(message, long_response)
    page = carol.get(reverse(CHANGELIST)).content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', page)
    assert headers == ["created", "envelope_sender", "recipient_addresses",
                       "recipient_states", "recipient_attempts", "next_attempt",
                       "recipient_responses"]
    assert long_response.strip() not in page.replace(f'title="mx.remote.test: {long_response}"',
                                                     "")
    assert "550 5.7.1 policy text policy text policy text" in page  # the start stays
    assert 'title="someone.with.a.very.long.name@subdomain.remote.test"' in page
    assert "panel/admin.css" in page


def test_system_mail_is_labelled_as_such_not_as_a_bounce(carol, alice) -> None:
    deliver(RAW, "", [], ["x@remote.test"], system=True)
    deliver(RAW, "", [], ["y@remote.test"])  # a bounce relayed from outside
    page = carol.get(reverse(CHANGELIST)).content.decode()
    assert page.count("&lt;&gt; (bounce)") == 1
    assert '<span class="queue-system">system</span> &lt;&gt;' in page
    assert listed(carol, system__exact="1") == [
        m.pk for m in OutboundMessage.objects.filter(system=True)]


def test_the_operator_reads_a_queued_messages_text_as_escaped_text(carol, alice) -> None:
    raw = (b"From: noreply@host.test\r\nTo: new@remote.test\r\nSubject: Confirm\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"Confirm: https://host.test/accounts/confirm-email/abc=3D/\r\n"
           b"--b\r\nContent-Type: text/html\r\n\r\n"
           b"<script>alert(1)</script><b>Confirm</b>\r\n--b--\r\n")
    message = OutboundMessage.objects.get(
        pk=deliver(raw, "", [], ["new@remote.test"], system=True).outbound_id)
    page = carol.get(reverse("admin:mailcore_outboundmessage_change",
                             args=[message.pk])).content.decode()
    assert "Confirm: https://host.test/accounts/confirm-email/abc=/" in page  # decoded
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page


def test_a_customer_cannot_read_a_queued_message(client: Client, alice) -> None:
    message = queue()
    user = get_user_model().objects.create_user("alice", "alice@example.test", "alice-pw")
    client.force_login(user)
    url = reverse("admin:mailcore_outboundmessage_change", args=[message.pk])
    response = client.get(url)
    assert response.status_code == 302 and "At noon?" not in response.content.decode()


def test_it_shows_a_message_with_its_recipients_read_only(carol, alice) -> None:
    message = queue()
    deferred(message)
    url = reverse("admin:mailcore_outboundmessage_change", args=[message.pk])
    response = carol.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Subject: Lunch?" in page and "451 4.7.1 greylisted" in page
    assert 'name="_save"' not in page
    assert carol.get(reverse("admin:mailcore_outboundmessage_add")).status_code == 403


def test_it_searches_by_recipient_and_sender_address(carol, alice) -> None:
    to_carol = queue()
    to_dave = queue(rcpts=("dave@remote.test", "erin@remote.test"))
    bounce = queue(mail_from="", rcpts=("someone@elsewhere.test",))
    assert listed(carol, q="dave@remote") == [to_dave.pk]
    assert listed(carol, q="remote.test") == [to_carol.pk, to_dave.pk]
    assert listed(carol, q="alice@example.test") == [to_carol.pk, to_dave.pk]
    assert listed(carol, q="elsewhere") == [bounce.pk]


def test_it_filters_by_recipient_state(carol, alice) -> None:
    fresh, waiting, done, failed = queue(), queue(), queue(), queue()
    deferred(waiting)
    done.recipients.update(state=State.DELIVERED, attempts=1)
    failed.recipients.update(state=State.FAILED, attempts=1)
    assert listed(carol, state="queued") == [fresh.pk, waiting.pk]
    assert listed(carol, state="deferred") == [waiting.pk]
    assert listed(carol, state="delivered") == [done.pk]
    assert listed(carol, state="failed") == [failed.pk]
    assert listed(carol) == [fresh.pk, waiting.pk, done.pk, failed.pk]


def test_retry_now_makes_queued_recipients_due_and_wakes_the_worker(
        carol, alice, published, django_capture_on_commit_callbacks) -> None:
    waiting, delivered = queue(), queue()
    deferred(waiting)
    waiting.recipients.update(leased_until=timezone.now() + timedelta(minutes=10))
    delivered.recipients.update(state=State.DELIVERED)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        response = act(carol, "retry_now", waiting, delivered)
    assert "1 recipient handed to the worker" in response.content.decode()
    recipient = waiting.recipients.get()
    assert before <= recipient.next_attempt_at <= timezone.now()
    assert recipient.leased_until is None
    assert recipient.state == State.QUEUED
    assert published == [[waiting.pk]]
    assert delivered.recipients.get().state == State.DELIVERED


def test_retry_now_hands_messages_to_the_worker_in_batches(
        alice, published, django_capture_on_commit_callbacks) -> None:
    from mailcore.queue import operations

    messages = [queue() for _ in range(operations.TASK_BATCH + 1)]
    with django_capture_on_commit_callbacks(execute=True):
        assert operations.retry_now(m.pk for m in messages) == len(messages)
    assert published == [[m.pk for m in messages[:-1]], [messages[-1].pk]]


def test_retry_now_survives_a_broker_that_is_down(
        alice, monkeypatch, django_capture_on_commit_callbacks) -> None:
    from mailcore.queue import operations

    def refuse(ids: list[int]) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr("mailcore.hooks.installed.outbound_due", refuse)
    message = queue()
    deferred(message)
    with django_capture_on_commit_callbacks(execute=True):
        assert operations.retry_now([message.pk]) == 1
    assert message.recipients.get().next_attempt_at <= timezone.now()


def test_bounce_now_fails_queued_recipients_and_tells_the_sender(carol, alice) -> None:
    message = queue(rcpts=("carol@remote.test", "dave@remote.test"))
    deferred(message)
    message.recipients.filter(address="dave@remote.test").update(state=State.DELIVERED)
    response = act(carol, "bounce_now", message)
    assert "1 recipient bounced" in response.content.decode()
    carol_row = message.recipients.get(address="carol@remote.test")
    assert (carol_row.state, carol_row.status, carol_row.last_response) == (
        State.FAILED, "5.0.0", "bounced by operator")
    assert carol_row.dsn_sent
    assert message.recipients.get(address="dave@remote.test").state == State.DELIVERED
    [dsn] = inbox(alice)
    report = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    per_recipient = report.get_payload()[1]
    assert per_recipient["Final-Recipient"] == "rfc822; carol@remote.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.0.0"
    assert "bounced by operator" in per_recipient["Diagnostic-Code"]


def test_bounce_now_leaves_a_recipient_in_delivery_alone(carol, alice) -> None:
    message = queue()
    message.recipients.update(leased_until=timezone.now() + timedelta(minutes=5), attempts=1)
    response = act(carol, "bounce_now", message)
    assert "being delivered right now" in response.content.decode()
    assert message.recipients.get().state == State.QUEUED
    assert inbox(alice) == []
    message.recipients.update(leased_until=timezone.now() - timedelta(seconds=1))
    act(carol, "bounce_now", message)
    assert message.recipients.get().state == State.FAILED


def test_bounce_now_never_bounces_a_bounce(carol, alice) -> None:
    message = queue(mail_from="", rcpts=("someone@elsewhere.test",))
    act(carol, "bounce_now", message)
    assert message.recipients.get().state == State.FAILED
    assert OutboundMessage.objects.count() == 1


def test_delete_removes_messages_and_recipients_without_a_dsn(carol, alice) -> None:
    doomed, kept = queue(rcpts=("carol@remote.test", "dave@remote.test")), queue()
    response = act(carol, "delete_selected", doomed)
    assert response.status_code == 200 and "Are you sure" in response.content.decode()
    assert OutboundMessage.objects.filter(pk=doomed.pk).exists()
    response = act(carol, "delete_selected", doomed, post="yes")
    assert response.status_code == 200
    assert list(OutboundMessage.objects.values_list("pk", flat=True)) == [kept.pk]
    assert OutboundRecipient.objects.filter(message_id=doomed.pk).count() == 0
    assert blob_store().get(kept.blob_id) == RAW  # the shared blob is left to the collector
    assert inbox(alice) == []
