"""The README's first five minutes, in a real browser, on the embedded default's development
settings: a customer signs up and confirms from the development outbox, adds a domain that
the operator marks verified, creates a mailbox, opens the webmail from the panel, sends a
message and receives one (over SMTP, as from another server)."""

from __future__ import annotations

import smtplib
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model

from mailcore.models import Domain, OutboundMessage
from tests.browser.conftest import DESKTOP, off_loop, screenshot_dir

pytestmark = pytest.mark.timeout(240)

OPERATOR, OPERATOR_PASSWORD = "ops@host.test", "Operator web pass 2025"
CUSTOMER, CUSTOMER_PASSWORD = "dora@outside.test", "Dora's web pass 2025"
MAILBOX_PASSWORD = "Info desk mail pass 77"


@pytest.fixture
def development(settings, tmp_path):
    """make run's settings: DEBUG, the development outbox, system mail through mailcore."""
    settings.DEBUG = True
    settings.DEV_OUTBOX = True
    settings.DEV_OUTBOX_DIR = tmp_path / "outbox"
    settings.EMAIL_BACKEND = "mailcore.sending.system.EmailBackend"
    settings.MAIL_HOSTNAME = "mx.host.test"
    settings.DEFAULT_FROM_EMAIL = "noreply@mx.host.test"
    settings.REQUIRE_STAFF_2FA = False
    settings.WEBMAIL_POLL_SECONDS = 1
    return settings


def _operator() -> None:
    user = get_user_model().objects.create_superuser(OPERATOR, OPERATOR, OPERATOR_PASSWORD)
    user.emailaddress_set.create(email=OPERATOR, verified=True, primary=True)


def _shoot(page, name: str) -> None:
    folder = screenshot_dir()
    if folder is not None:
        page.screenshot(path=str(folder / f"first-{name}.png"), full_page=True)


def _log_in(page, base: str, email: str, password: str) -> None:
    page.goto(base + "/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Sign In").click()


def test_a_new_user_gets_from_sign_up_to_mail_in_the_webmail(
        chromium, live_server, server, development) -> None:
    base = live_server.url
    off_loop(_operator)
    customer = chromium.new_context(viewport=DESKTOP).new_page()
    operator = chromium.new_context(viewport=DESKTOP).new_page()

    # Sign up: the page says where the confirmation went (nothing leaves this machine).
    customer.goto(base + "/accounts/signup/")
    customer.fill("input[name=email]", CUSTOMER)
    customer.fill("input[name=password1]", CUSTOMER_PASSWORD)
    customer.fill("input[name=password2]", CUSTOMER_PASSWORD)
    customer.get_by_role("button", name="Sign Up").click()
    customer.get_by_text("development outbox").wait_for()
    _shoot(customer, "01-signed-up")

    # The operator finds the confirmation in the development outbox.
    _log_in(operator, base, OPERATOR, OPERATOR_PASSWORD)
    operator.locator(".mainnav").get_by_role("link", name="Outbox").click()
    operator.get_by_role("heading", name="Development outbox").wait_for()
    operator.locator("#outbox").get_by_role("link", name="Confirm").click()
    _shoot(operator, "02-outbox-message")
    link = operator.locator("#outbox-links a", has_text="/confirm-email/").get_attribute("href")
    assert urlsplit(link).netloc == urlsplit(base).netloc
    assert not off_loop(OutboundMessage.objects.exists)

    # The customer confirms, adds a domain; the page says how it is verified here.
    customer.goto(link)
    customer.get_by_role("button", name="Confirm").click()
    customer.get_by_role("heading", name="Your domains").wait_for()
    customer.locator(".page-head").get_by_role("link", name="Add a domain").click()
    customer.fill("input[name=name]", "shop.test")
    customer.get_by_role("button", name="Add domain").click()
    customer.get_by_role("heading", name="DNS records for shop.test").wait_for()
    assert "manage.py domain verify shop.test" in customer.locator("#dev-verify").inner_text()
    domain = off_loop(Domain.objects.get, name="shop.test")

    # Port 25 says the domain is not verified yet.
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.ehlo("friend.test")
        smtp.mail("friend@remote.test")
        code, text = smtp.rcpt("info@shop.test")
    assert (code, text[:5]) == (550, b"5.1.2") and b"not yet verified" in text

    # The operator marks it verified in the admin.
    operator.goto(base + f"/admin/mailcore/domain/{domain.pk}/change/")
    operator.get_by_role("button", name="Mark as verified").click()
    operator.get_by_text("shop.test is verified and receives mail").wait_for()
    _shoot(operator, "03-admin-verified")

    # The customer creates a mailbox and opens the webmail from its page.
    customer.goto(base + f"/domains/{domain.pk}/")
    customer.get_by_text("Receiving mail since").wait_for()
    customer.get_by_role("link", name="New mailbox").click()
    customer.fill("input[name=local_part]", "info")
    customer.fill("input[name=display_name]", "Info Desk")
    customer.fill("input[name=password1]", MAILBOX_PASSWORD)
    customer.fill("input[name=password2]", MAILBOX_PASSWORD)
    customer.get_by_role("button", name="Create mailbox").click()
    customer.get_by_role("heading", name="info@shop.test").wait_for()
    customer.locator("#open-webmail").click()
    customer.get_by_role("heading", name="Sign in to webmail").wait_for()
    assert customer.input_value("input[name=address]") == "info@shop.test"
    customer.fill("input[name=password]", MAILBOX_PASSWORD)
    customer.get_by_role("button", name="Sign in").click()
    customer.get_by_role("heading", name="INBOX").wait_for()
    _shoot(customer, "04-webmail")

    # Send a message (to the mailbox itself), and receive one from another server.
    customer.get_by_role("link", name="Compose").click()
    customer.fill("input[name=to]", "info@shop.test")
    customer.fill("input[name=subject]", "Note to self")
    customer.locator("textarea[name=body]").fill("Remember the milk.")
    customer.get_by_role("button", name="Send", exact=True).click()
    customer.get_by_text("Your message is sent.").wait_for()
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("friend@remote.test", ["info@shop.test"],
                      b"From: friend@remote.test\r\nTo: info@shop.test\r\n"
                      b"Subject: Welcome to your shop\r\n\r\nFirst mail!\r\n")
    customer.goto(base + "/webmail/")
    customer.get_by_role("link", name="Note to self").wait_for()
    customer.get_by_role("link", name="Welcome to your shop").click()
    customer.get_by_text("First mail!").wait_for()
    _shoot(customer, "05-received")
