"""Webmail settings: the signature in new mail, and the vacation reply on delivery."""

from __future__ import annotations

import email
import re

import pytest
from django.test import Client
from django.urls import reverse

from mailcore import directory
from mailcore.models import AppPassword, MailboxSettings, OutboundMessage, VacationReply
from mailcore.passwords import check_password
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from tests.conftest import PASSWORD
from tests.test_webmail_helpers import csrf_client, make_message, sign_in

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


# The mailbox user's own password and app passwords ----------------------------------------

NEW = "a fresh Mailbox phrase 77"
ALICE = "alice@example.test"


def _change(client: Client, current: str = PASSWORD, new: str = NEW, again: str | None = None):
    return client.post(reverse("webmail:password"), {
        "current_password": current, "password1": new, "password2": again or new})


def test_a_user_changes_the_password_and_other_web_sessions_end(alice):
    here, elsewhere = sign_in(Client(), ALICE), sign_in(Client(), ALICE)
    app_secret = directory.add_app_password(alice, "Phone")[1]
    on_phone = sign_in(Client(), ALICE, app_secret)
    response = _change(here)
    assert response.status_code == 302
    alice.refresh_from_db()
    assert check_password(ALICE, NEW, alice.password_hash)
    assert here.get(reverse("webmail:settings")).status_code == 200  # this one stays
    for other in (elsewhere, on_phone):
        response = other.get(reverse("webmail:settings"))
        assert response.status_code == 302 and reverse("webmail:login") in response["Location"]
    assert directory.log_in(ALICE, NEW, "127.0.0.1").credential == "password"
    assert directory.log_in(ALICE, app_secret, "127.0.0.1").credential == "app"  # apps keep on


def test_a_wrong_current_password_changes_nothing_and_is_throttled(alice, settings):
    settings.AUTH_FAILURE_DELAY = 30
    client = sign_in(Client(), ALICE)
    response = _change(client, current="not it")
    assert response.status_code == 200
    assert "The current password is wrong." in response.content.decode()
    response = _change(client)  # even the right one must wait now, as a login would
    assert "Too many failed attempts" in response.content.decode()
    alice.refresh_from_db()
    assert check_password(ALICE, PASSWORD, alice.password_hash)
    assert client.get(reverse("webmail:settings")).status_code == 200


def test_an_app_password_is_not_the_current_password(alice):
    app_secret = directory.add_app_password(alice, "Phone")[1]
    client = sign_in(Client(), ALICE, app_secret)
    response = _change(client, current=app_secret)
    assert "The current password is wrong." in response.content.decode()
    alice.refresh_from_db()
    assert check_password(ALICE, PASSWORD, alice.password_hash)


def test_a_weak_or_mistyped_new_password_is_refused(alice):
    client = sign_in(Client(), ALICE)
    assert "too short" in _change(client, new="short1").content.decode()
    assert "differ" in _change(client, again="something else entirely 9").content.decode()
    alice.refresh_from_db()
    assert check_password(ALICE, PASSWORD, alice.password_hash)


def test_the_password_forms_need_the_csrf_token(alice):
    client, token = csrf_client(ALICE)
    data = {"current_password": PASSWORD, "password1": NEW, "password2": NEW}
    assert client.post(reverse("webmail:password"), data).status_code == 403
    assert client.post(reverse("webmail:app_password_add"),
                       {"name": "Phone", "current_password": PASSWORD}).status_code == 403
    assert client.post(reverse("webmail:password"),
                       {**data, "csrfmiddlewaretoken": token}).status_code == 302


def test_a_user_makes_lists_and_revokes_app_passwords(alice):
    client = sign_in(Client(), ALICE)
    page = client.post(reverse("webmail:app_password_add"),
                       {"name": "Laptop", "current_password": PASSWORD}).content.decode()
    secret = re.search(r'<code id="secret">([^<]+)</code>', page).group(1)
    assert directory.log_in(ALICE, secret, "127.0.0.1").credential == "app"
    app = AppPassword.objects.get(mailbox=alice)
    assert "Laptop" in client.get(reverse("webmail:settings")).content.decode()
    assert secret not in client.get(reverse("webmail:settings")).content.decode()  # once
    response = client.post(reverse("webmail:app_password_revoke", args=[app.pk]))
    assert response.status_code == 302
    assert not AppPassword.objects.exists()


def test_making_an_app_password_needs_the_current_password(alice):
    client = sign_in(Client(), ALICE)
    response = client.post(reverse("webmail:app_password_add"),
                           {"name": "Laptop", "current_password": "guess"})
    assert "The current password is wrong." in response.content.decode()
    assert not AppPassword.objects.exists()


def test_another_mailbox_cannot_revoke_an_app_password(alice, bob):
    app = directory.add_app_password(alice, "Phone")[0]
    bobs = sign_in(Client(), "bob@example.test")
    assert bobs.post(reverse("webmail:app_password_revoke", args=[app.pk])).status_code == 404
    assert AppPassword.objects.filter(pk=app.pk).exists()
