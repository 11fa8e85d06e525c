"""The development outbox: system mail for outside addresses kept for operators, not sent."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, send_mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mailcore import dsn
from mailcore.models import OutboundMessage
from mailcore.queue.bounces import send_dsn
from mailcore.sending import devoutbox
from tests.mailboxes import inbox
from tests.panel_cast import *  # noqa: F403

pytestmark = pytest.mark.django_db

SIGNUP_PASSWORD = "Sign-up pass 2024!"


@pytest.fixture(autouse=True)
def _outbox(settings, tmp_path):
    """Development's outbox in a folder of this test's, our own mail path as in production."""
    settings.DEV_OUTBOX = True
    settings.DEV_OUTBOX_DIR = tmp_path / "outbox"
    settings.EMAIL_BACKEND = "mailcore.sending.system.EmailBackend"
    settings.MAIL_HOSTNAME = "mx.host.test"
    settings.DEFAULT_FROM_EMAIL = "noreply@mx.host.test"


@pytest.fixture
def outbox_log(caplog):
    caplog.set_level(logging.INFO, logger="mailcore.outbox")
    return caplog


def _report(sender: str) -> bytes:
    return dsn.build(reporting_mta="mx.host.test", sender=sender,
                     original=b"Subject: hi\r\n\r\nhello\r\n",
                     reports=[dsn.RecipientReport("gone@far.test", "failed", "5.1.1",
                                                  "550 5.1.1 no such user")],
                     arrival=timezone.now() - timedelta(minutes=5))


# What goes to the outbox --------------------------------------------------------------------

def test_system_mail_for_an_outside_address_is_kept_not_queued(outbox_log) -> None:
    send_mail("Your reset link", "Open http://127.0.0.1:8000/accounts/password/reset/key/1-x/ "
              "to choose a new password.", None, ["someone@outside.test"])
    assert not OutboundMessage.objects.exists()
    (kept,) = devoutbox.listing()
    assert kept.recipients == ("someone@outside.test",)
    assert kept.mail_from == "noreply@mx.host.test"
    assert kept.subject == "Your reset link"
    assert kept.links == ["http://127.0.0.1:8000/accounts/password/reset/key/1-x/"]
    assert b"\r\nSubject: Your reset link\r\n" in b"\r\n" + kept.raw
    assert not kept.raw.startswith(b"Return-Path")
    line = next(r.getMessage() for r in outbox_log.records if r.name == "mailcore.outbox")
    assert "someone@outside.test" in line
    assert "http://127.0.0.1:8000/accounts/password/reset/key/1-x/" in line


def test_a_hosted_recipient_still_gets_its_copy(alice_mailbox) -> None:
    send_mail("Notice", "Hello", None, ["hello@alice.test", "someone@outside.test"])
    assert len(inbox(alice_mailbox)) == 1
    assert [k.recipients for k in devoutbox.listing()] == [("someone@outside.test",)]
    assert not OutboundMessage.objects.exists()


def test_production_queues_system_mail_and_keeps_nothing(settings) -> None:
    settings.DEV_OUTBOX = False
    send_mail("Your reset link", "Hello", None, ["someone@outside.test"])
    assert OutboundMessage.objects.get().recipients.get().address == "someone@outside.test"
    assert devoutbox.listing() == []


def test_a_bounce_to_an_outside_sender_is_kept(alice_mailbox) -> None:
    send_dsn(_report("sender@outside.test"), "sender@outside.test")
    assert not OutboundMessage.objects.exists()
    (kept,) = devoutbox.listing()
    assert kept.mail_from == "" and kept.recipients == ("sender@outside.test",)
    assert kept.subject == "Undelivered Mail Returned to Sender"
    send_dsn(_report("hello@alice.test"), "hello@alice.test")  # a hosted sender's: its inbox
    assert len(inbox(alice_mailbox)) == 1
    assert len(devoutbox.listing()) == 1


def test_a_claim_notice_to_an_outside_owner_is_kept(bob_user, django_capture_on_commit_callbacks
                                                    ) -> None:
    from mailcore import directory
    bob_user.email = "bob@outside.test"
    bob_user.save()
    directory.add_domain("wanted.test", owner=bob_user, verified=False)
    with django_capture_on_commit_callbacks(execute=True):
        directory.add_domain("wanted.test")
    (kept,) = devoutbox.listing()
    assert kept.recipients == ("bob@outside.test",)
    assert "wanted.test" in kept.subject


def test_the_outbox_lists_newest_first_and_ignores_stray_files(settings) -> None:
    first = devoutbox.keep(b"Subject: one\r\n\r\nx\r\n", "a@b.test", ["c@d.test"])
    second = devoutbox.keep(b"Subject: two\r\n\r\nx\r\n", "a@b.test", ["c@d.test"])
    (settings.DEV_OUTBOX_DIR / "notes.eml").write_bytes(b"Subject: stray\r\n\r\n")
    (settings.DEV_OUTBOX_DIR / "../outside.eml").write_bytes(b"Subject: outside\r\n\r\n")
    keys = [k.key for k in devoutbox.listing()]
    assert sorted(keys, reverse=True) == keys and set(keys) == {first, second}
    assert devoutbox.get("../outside") is None and devoutbox.get("notes") is None


# Signing up: the confirmation from the outbox -----------------------------------------------

def test_sign_up_is_confirmed_from_the_outbox(client: Client, as_carol: Client) -> None:
    response = client.post(reverse("account_signup"), {
        "email": "new@outside.test", "password1": SIGNUP_PASSWORD,
        "password2": SIGNUP_PASSWORD}, follow=True)
    page = response.content.decode()
    assert "development outbox" in page and "spam folder" not in page
    assert not OutboundMessage.objects.exists()
    listing = as_carol.get(reverse("outbox")).content.decode()
    (kept,) = devoutbox.listing()
    assert reverse("outbox_message", args=[kept.key]) in listing
    assert "new@outside.test" in listing
    page = as_carol.get(reverse("outbox_message", args=[kept.key])).content.decode()
    (link,) = [u for u in kept.links if "/confirm-email/" in u]
    assert f'<a href="{link}"' in page  # clickable, in the text and the list of links
    path = re.sub(r"^https?://[^/]+", "", link)
    client.post(path)
    user = get_user_model().objects.get(email="new@outside.test")
    assert user.emailaddress_set.get().verified


def test_the_sign_up_page_says_check_spam_in_production(client: Client, settings) -> None:
    settings.DEV_OUTBOX = False
    response = client.post(reverse("account_signup"), {
        "email": "new@outside.test", "password1": SIGNUP_PASSWORD,
        "password2": SIGNUP_PASSWORD}, follow=True)
    assert b"spam folder" in response.content
    assert b"development outbox" not in response.content


# The operator's pages ---------------------------------------------------------------------

def test_a_message_is_shown_rendered_and_sanitised(as_carol: Client) -> None:
    message = EmailMultiAlternatives(
        "Welcome", "Plain: visit https://example.test/start?a=1&b=2 now.", None,
        ["someone@outside.test"])
    message.attach_alternative(
        '<p onclick="steal()">Hi <a href="https://example.test/start">start</a>'
        '<script>alert(1)</script><img src="https://tracker.test/p.gif"></p>', "text/html")
    message.send()
    (kept,) = devoutbox.listing()
    page = as_carol.get(reverse("outbox_message", args=[kept.key])).content.decode()
    assert ('<a href="https://example.test/start?a=1&amp;b=2" target="_blank" '
            'rel="noopener noreferrer">') in page
    shown = page.split('<details class="zone">')[0]  # the source, escaped, follows
    assert "<script>alert" not in shown and "onclick" not in shown
    frame = re.search(r'<iframe class="outbox-html"[^>]*srcdoc="([^"]*)"', page).group(1)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in page
    assert "&lt;a href=&quot;https://example.test/start&quot;" in frame
    assert "tracker.test" not in frame and "alert" not in frame
    assert "<dt>Subject</dt><dd>Welcome</dd>" in page
    assert "&lt;noreply@mx.host.test&gt;" in page  # the envelope sender


def test_only_operators_see_the_outbox(as_alice: Client, client: Client) -> None:
    key = devoutbox.keep(b"Subject: secret\r\n\r\nx\r\n", "a@b.test", ["c@d.test"])
    for url in (reverse("outbox"), reverse("outbox_message", args=[key])):
        assert as_alice.get(url).status_code == 404
        assert client.get(url).status_code == 302  # to the login page
    assert as_alice.post(reverse("outbox_clear")).status_code == 404
    assert devoutbox.get(key) is not None


def test_an_unknown_or_malformed_key_is_404(as_carol: Client) -> None:
    assert as_carol.get(reverse("outbox_message", args=["20260101T000000-000000000000"])
                        ).status_code == 404
    assert as_carol.get("/dashboard/outbox/..%2Fdb.sqlite3/").status_code == 404


def test_the_operator_empties_the_outbox(as_carol: Client) -> None:
    devoutbox.keep(b"Subject: one\r\n\r\nx\r\n", "a@b.test", ["c@d.test"])
    assert as_carol.get(reverse("outbox_clear")).status_code == 405
    response = as_carol.post(reverse("outbox_clear"), follow=True)
    assert b"The outbox is empty (1 removed)" in response.content
    assert devoutbox.listing() == []


def test_the_navigation_shows_the_outbox_to_operators_in_development(
        as_carol: Client, as_alice: Client, settings) -> None:
    assert f'href="{reverse("outbox")}"' in as_carol.get(reverse("home")).content.decode()
    assert f'href="{reverse("outbox")}"' not in as_alice.get(reverse("home")).content.decode()
    settings.DEV_OUTBOX = False
    assert f'href="{reverse("outbox")}"' not in as_carol.get(reverse("home")).content.decode()
    assert b"The development outbox is off" in as_carol.get(reverse("outbox")).content


def test_a_kept_message_survives_as_a_file_a_mail_program_can_open(settings) -> None:
    key = devoutbox.keep(b"Subject: one\r\n\r\nx\r\n", "a@b.test", ["c@d.test", "e@f.test"])
    data = (settings.DEV_OUTBOX_DIR / f"{key}.eml").read_bytes()
    assert data == (b"Return-Path: <a@b.test>\r\nX-Original-To: <c@d.test>\r\n"
                    b"X-Original-To: <e@f.test>\r\nSubject: one\r\n\r\nx\r\n")
    assert not list(settings.DEV_OUTBOX_DIR.glob(".tmp-*"))


def test_a_password_reset_lands_in_the_outbox_and_the_page_says_so(client: Client,
                                                                  alice_user) -> None:
    alice_user.email = "alice@outside.test"
    alice_user.save()
    alice_user.emailaddress_set.create(email="alice@outside.test", verified=True, primary=True)
    response = client.post(reverse("account_reset_password"), {"email": "alice@outside.test"},
                           follow=True)
    assert b"development outbox" in response.content
    (kept,) = devoutbox.listing()
    assert kept.recipients == ("alice@outside.test",)
    assert any("/accounts/password/reset/key/" in link for link in kept.links)
