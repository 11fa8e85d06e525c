"""Webmail settings: the signature in new mail, and the vacation reply on delivery."""

from __future__ import annotations

import email

import pytest
from django.test import Client
from django.urls import reverse

from mailcore.models import MailboxSettings, OutboundMessage, VacationReply
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from tests.test_webmail_helpers import make_message, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

AWAY = {"display_name": "Alice A.", "signature": "Alice\nExample Ltd",
        "vacation_enabled": "on", "vacation_subject": "", "vacation_body": "Back on Monday.",
        "vacation_start": "", "vacation_end": "", "vacation_interval_days": "7"}


@pytest.fixture
def queued_tasks(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr("mailcore.tasks.vacation_reply.delay", lambda *a: calls.append(a))
    return calls


def test_settings_are_saved_and_the_signature_starts_new_mail(alice):
    client = sign_in(Client(), "alice@example.test")
    response = client.post(reverse("webmail:settings"), AWAY)
    assert response.status_code == 302
    stored = MailboxSettings.objects.get(mailbox=alice)
    assert stored.signature == "Alice\nExample Ltd" and stored.vacation_enabled
    page = client.get(reverse("webmail:compose")).content.decode()
    assert "-- \nAlice\nExample Ltd" in page


def test_the_settings_page_shows_the_address_storage_and_sending_limits(alice):
    alice.used_bytes, alice.quota_bytes = 5 * 1024 * 1024, 100 * 1024 * 1024
    alice.send_limit_per_hour, alice.max_recipients = 50, 20
    alice.save()
    client = sign_in(Client(), "alice@example.test")
    page = client.get(reverse("webmail:settings")).content.decode().replace("\xa0", " ")
    assert 'title="Signed in as alice@example.test"' in page
    assert "<dt>Address</dt><dd>alice@example.test</dd>" in page
    assert "5.0 MB of 100.0 MB" in page
    assert "up to 50 messages an hour, 20 recipients a message" in page


def test_a_new_display_name_names_the_sender_in_the_next_message(alice):
    client = sign_in(Client(), "alice@example.test")
    client.post(reverse("webmail:settings"), AWAY)
    page = client.get(reverse("webmail:compose")).content.decode()
    assert "Alice A. &lt;alice@example.test&gt;" in page


def test_a_vacation_without_text_is_refused_with_a_field_error(alice):
    client = sign_in(Client(), "alice@example.test")
    response = client.post(reverse("webmail:settings"), {**AWAY, "vacation_body": ""})
    assert response.status_code == 200
    assert b"Write the text of the automatic reply." in response.content
    assert not MailboxSettings.objects.filter(mailbox=alice).exists()


def test_delivery_to_an_away_mailbox_answers_each_sender_once(alice, queued_tasks):
    from mailcore.tasks import vacation_reply

    sign_in(Client(), "alice@example.test").post(reverse("webmail:settings"), AWAY)
    raw = make_message(subject="Lunch?", sender="Carol <carol@remote.test>")
    delivered = deliver(raw, "carol@remote.test", [alice.pk])
    assert queued_tasks == [(alice.pk, delivered.blob_key, "carol@remote.test")]
    assert vacation_reply(*queued_tasks[0]) == "reply"
    reply = OutboundMessage.objects.get()
    assert reply.mail_from == ""
    assert reply.recipients.get().address == "carol@remote.test"
    parsed = email.message_from_bytes(blob_store().get(reply.blob_id))
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["Subject"] == "Auto: Lunch?"
    assert "Back on Monday." in parsed.get_payload(decode=True).decode()
    assert VacationReply.objects.filter(mailbox=alice, sender="carol@remote.test").exists()
    again = deliver(make_message(subject="Still?", sender="carol@remote.test"),
                    "carol@remote.test", [alice.pk])
    assert vacation_reply(alice.pk, again.blob_key, "carol@remote.test") == "already answered"
    assert OutboundMessage.objects.count() == 1


def test_bounces_and_mailboxes_not_away_queue_no_reply(alice, bob, queued_tasks):
    deliver(make_message(), "", [alice.pk])
    deliver(make_message(), "carol@remote.test", [bob.pk])
    assert queued_tasks == []
