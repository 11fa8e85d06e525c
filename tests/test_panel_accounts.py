"""Accounts: sign-up with verification through our own mail path, rate limits, staff 2FA."""

from __future__ import annotations

import email
import re
from email import policy

import dkim as dkimpy
import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from mailcore import directory
from mailcore import dkim as our_dkim
from mailcore.models import Message, OutboundMessage, OutboundRecipient
from mailcore.sending.system import UndeliverableMessage
from mailcore.store.blobs import blob_store
from tests.panel_cast import *  # noqa: F403

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _our_mail(settings):
    """Send through mailcore.sending.system, as in production (pytest-django would use locmem)."""
    settings.EMAIL_BACKEND = "mailcore.sending.system.EmailBackend"
    settings.MAIL_HOSTNAME = "mx.host.test"
    settings.DEFAULT_FROM_EMAIL = "noreply@mx.host.test"


def inbox(address: str) -> list[email.message.EmailMessage]:
    mailbox = directory.get_mailbox(address)
    rows = Message.objects.filter(folder__mailbox=mailbox, folder__name="INBOX").order_by("uid")
    return [email.message_from_bytes(blob_store().get(m.blob_id), policy=policy.default)
            for m in rows]


def link_in(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",)).get_content()
    return re.search(r"https?://[^/\s]+(/\S+)", body).group(1)


def test_signup_sends_the_verification_into_a_hosted_mailbox(client: Client, alice_mailbox
                                                            ) -> None:
    response = client.post(reverse("account_signup"), {
        "email": "hello@alice.test", "password1": "Sign-up pass 2024!",
        "password2": "Sign-up pass 2024!"})
    assert response.status_code == 302
    (message,) = inbox("hello@alice.test")
    assert "Confirm" in message["Subject"] and message["To"] == "hello@alice.test"
    assert message["From"] == "noreply@mx.host.test"
    # Not verified yet: logging in is held at the "verify your email" stage.
    user = get_user_model().objects.get(email="hello@alice.test")
    assert not user.emailaddress_set.get().verified
    confirm = link_in(message)
    assert client.get(confirm).status_code == 200
    response = client.post(confirm)
    assert response.status_code == 302
    assert user.emailaddress_set.get().verified
    assert client.get(reverse("home")).context["user"] == user


def test_a_verification_for_elsewhere_is_queued_from_the_noreply_address(
        client: Client, kicked, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("account_signup"), {
            "email": "someone@remote.test", "password1": "Sign-up pass 2024!",
            "password2": "Sign-up pass 2024!"})
    recipient = OutboundRecipient.objects.get()
    assert recipient.address == "someone@remote.test"
    assert recipient.message.mail_from == "noreply@mx.host.test"
    assert kicked == [recipient.message_id]
    assert mail.outbox == []


def test_mail_from_a_hosted_domain_is_dkim_signed(alice_domain, settings) -> None:
    mail.send_mail("Hello", "Body", "noreply@alice.test", ["someone@remote.test"])
    raw = blob_store().get(OutboundMessage.objects.get().blob_id)
    assert raw.startswith(b"DKIM-Signature:")
    name, value = our_dkim.dns_record(alice_domain)

    def dnsfunc(qname, timeout=5):
        return value.encode() if qname.decode().rstrip(".") == name else b""

    assert dkimpy.verify(raw, dnsfunc=dnsfunc)


def test_mail_to_an_unknown_local_user_is_refused(alice_domain) -> None:
    with pytest.raises(UndeliverableMessage):
        mail.send_mail("Hello", "Body", None, ["nobody@alice.test"])
    assert mail.send_mail("Hello", "Body", None, ["nobody@alice.test"],
                          fail_silently=True) == 0


def test_a_password_reset_arrives_and_works(client: Client, alice_mailbox) -> None:
    user = get_user_model().objects.create_user("hi", "hello@alice.test", "Old pass 2024!")
    user.emailaddress_set.create(email="hello@alice.test", verified=True, primary=True)
    client.post(reverse("account_reset_password"), {"email": "hello@alice.test"})
    (message,) = inbox("hello@alice.test")
    assert "Password Reset" in message["Subject"]
    response = client.get(link_in(message), follow=True)
    form_url = response.redirect_chain[-1][0] if response.redirect_chain else link_in(message)
    client.post(form_url, {"password1": "New pass 2025!!", "password2": "New pass 2025!!"})
    user.refresh_from_db()
    assert user.check_password("New pass 2025!!")


def _verified(name: str, staff: bool = False):
    user = get_user_model().objects.create_user(name, f"{name}@customers.test", WEB_PASSWORD,  # noqa: F405
                                                is_staff=staff)
    user.emailaddress_set.create(email=user.email, verified=True, primary=True)
    return user


def test_logging_in_and_out(client: Client) -> None:
    _verified("dora")
    response = client.post(reverse("account_login"), {
        "login": "dora@customers.test", "password": WEB_PASSWORD})  # noqa: F405
    assert response.status_code == 302
    assert client.get(reverse("home")).context["user"].username == "dora"
    client.post(reverse("account_logout"))
    assert not client.get(reverse("home")).context["user"].is_authenticated


def test_failed_logins_are_rate_limited(client: Client, settings) -> None:
    # The failing address is refused in the end; other addresses are not (test_throttle).
    settings.AUTH_MAX_FAILURES = 5
    settings.AUTH_FAILURE_DELAY = 0  # no "not before" time: each guess is checked
    _verified("dora")
    for _ in range(5):
        response = client.post(reverse("account_login"), {
            "login": "dora@customers.test", "password": "wrong"})
        assert response.status_code == 200
    response = client.post(reverse("account_login"), {
        "login": "dora@customers.test", "password": WEB_PASSWORD})  # noqa: F405
    assert response.status_code in (200, 429)
    assert "Too many failed login attempts" in response.content.decode()


@pytest.mark.parametrize("url", ["/dashboard/", "/", "/admin/"])
def test_staff_without_totp_must_set_it_up_when_required(as_carol, settings, url) -> None:
    settings.REQUIRE_STAFF_2FA = True
    response = as_carol.get(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")


def test_staff_with_totp_and_customers_are_let_through(as_carol, carol_user, as_alice, settings
                                                       ) -> None:
    settings.REQUIRE_STAFF_2FA = True
    assert as_alice.get("/").status_code == 200
    Authenticator.objects.create(user=carol_user, type=Authenticator.Type.TOTP,
                                 data={"secret": "x"})
    assert as_carol.get("/dashboard/").status_code == 200


def test_staff_logging_in_land_on_the_totp_setup(client: Client, settings) -> None:
    settings.REQUIRE_STAFF_2FA = True
    _verified("olga", staff=True)
    response = client.post(reverse("account_login"), {
        "login": "olga@customers.test", "password": WEB_PASSWORD}, follow=True)  # noqa: F405
    # allauth asks for the password again before a new authenticator is added.
    last = response.redirect_chain[-1][0]
    assert last.startswith(reverse("account_reauthenticate"))
    response = client.post(last, {"password": WEB_PASSWORD}, follow=True)  # noqa: F405
    assert response.redirect_chain[-1][0] == reverse("mfa_activate_totp")
    assert response.status_code == 200
    assert b"<svg" in response.content or b"data:image/svg" in response.content


def test_the_admin_logs_in_through_allauth(client: Client) -> None:
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("name", ["account_login", "account_signup", "account_reset_password"])
def test_account_pages_use_the_panel_layout(client: Client, name) -> None:
    page = client.get(reverse(name)).content.decode()
    assert 'class="topbar"' in page and "panel.css" in page
    assert "<label" in page


@pytest.mark.parametrize("name", ["account_email", "account_change_password", "mfa_index"])
def test_account_settings_pages_render(as_alice, name) -> None:
    page = as_alice.get(reverse(name)).content.decode()
    assert 'aria-label="Account"' in page
