"""A new customer's first day, in a real browser: sign up, verify the email, add a domain,
prove it in DNS, create a mailbox, set up a client, and read mail sent to it over POP3.
And an operator's look at the dashboard."""

from __future__ import annotations

import email
import poplib
import re
import smtplib
from email import policy
from email.message import EmailMessage

import pytest
from django.contrib.auth import get_user_model

from mailcore import directory
from mailcore.models import Domain, OutboundMessage
from mailcore.store.blobs import blob_store
from tests.browser.conftest import DESKTOP, PHONE, off_loop, screenshot_dir
from tests.dns_server import DNSServer
from tests.panel_cast import WEB_PASSWORD, published_records

pytestmark = pytest.mark.timeout(180)

SIGNUP_EMAIL = "dora@customers.test"
SIGNUP_PASSWORD = "Dora's web pass 2025"
MAILBOX_PASSWORD = "Info desk mail pass 77"


@pytest.fixture
def mail_settings(settings):
    settings.EMAIL_BACKEND = "mailcore.sending.system.EmailBackend"
    settings.MAIL_HOSTNAME = "mx.host.test"
    settings.DEFAULT_FROM_EMAIL = "noreply@mx.host.test"
    settings.REQUIRE_STAFF_2FA = False
    return settings


def _verification_mail(address: str) -> EmailMessage:
    """Return the verification message the mailer queued for a remote address."""
    outbound = OutboundMessage.objects.filter(recipients__address=address).latest("pk")
    return email.message_from_bytes(blob_store().get(outbound.blob_id), policy=policy.default)


def _path_of_link(message: EmailMessage) -> str:
    body = message.get_body(("plain",)).get_content()
    return re.search(r"https?://[^/\s]+(/\S+)", body).group(1)


def _shoot(page, name: str) -> None:
    folder = screenshot_dir()
    if folder is not None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_a_new_customer_receives_mail_on_their_own_domain(
        chromium, live_server, server, mail_settings) -> None:
    context = chromium.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    base = live_server.url

    # Sign up; the verification is mailed through mailcore (queued: the address is remote).
    page.goto(base + "/")
    _shoot(page, "01-landing")
    page.get_by_role("link", name="Create an account").click()
    page.fill("input[name=email]", SIGNUP_EMAIL)
    page.fill("input[name=password1]", SIGNUP_PASSWORD)
    page.fill("input[name=password2]", SIGNUP_PASSWORD)
    _shoot(page, "02-signup")
    page.get_by_role("button", name="Sign Up").click()
    page.wait_for_url("**/accounts/confirm-email/")
    message = off_loop(_verification_mail, SIGNUP_EMAIL)
    assert message["To"] == SIGNUP_EMAIL

    page.goto(base + _path_of_link(message))
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Your domains").wait_for()
    _shoot(page, "03-home-empty")

    # Add a domain: it waits for its DNS records.
    page.get_by_role("link", name="Add a domain").first.click()
    page.fill("input[name=name]", "shop.test")
    page.get_by_role("button", name="Add domain").click()
    page.get_by_role("heading", name="DNS records for shop.test").wait_for()
    assert page.locator("#record-ownership").is_visible()
    domain = off_loop(Domain.objects.get, name="shop.test")
    assert domain.verified_at is None

    # Publish the records on a loopback DNS server, and check them.
    records = off_loop(published_records, domain)
    with DNSServer(records) as dns:
        mail_settings.DNS_RESOLVER = dns.address
        page.get_by_role("button", name="Check DNS").click()
        page.get_by_text("Ownership of shop.test is proven").wait_for()
    assert page.locator('[data-key="mx"]').get_attribute("data-status") == "right"
    _shoot(page, "04-dns-checked")

    # Create a mailbox.
    page.locator(".crumbs").get_by_role("link", name="shop.test").click()
    page.get_by_role("link", name="New mailbox").click()
    page.fill("input[name=local_part]", "info")
    page.fill("input[name=display_name]", "Info Desk")
    page.fill("input[name=password1]", MAILBOX_PASSWORD)
    page.fill("input[name=password2]", MAILBOX_PASSWORD)
    page.fill("input[name=quota_mb]", "200")
    _shoot(page, "05-new-mailbox")
    page.get_by_role("button", name="Create mailbox").click()
    page.get_by_role("heading", name="info@shop.test").wait_for()
    _shoot(page, "06-mailbox")

    # Client setup, the autoconfig document, and the Apple profile.
    page.get_by_role("link", name="Set up a mail app").click()
    assert "POP3" in page.locator("#servers").inner_text()
    _shoot(page, "07-setup")
    autoconfig = page.request.get(base + page.locator("#autoconfig-link").get_attribute("href"))
    assert autoconfig.ok and "<clientConfig" in autoconfig.text()
    assert "<hostname>mx.host.test</hostname>" in autoconfig.text()
    with page.expect_download() as download:
        page.locator("#mobileconfig-link").click()
    assert download.value.suggested_filename == "info@shop.test.mobileconfig"

    # A message sent over SMTP to the new mailbox is downloadable over POP3.
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("friend@remote.test", ["info@shop.test"],
                      b"From: friend@remote.test\r\nTo: info@shop.test\r\n"
                      b"Subject: Welcome to your shop\r\n\r\nFirst mail!\r\n")
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    try:
        pop.user("info@shop.test")
        pop.pass_(MAILBOX_PASSWORD)
        assert pop.stat()[0] == 1
        lines = pop.retr(1)[1]
    finally:
        pop.quit()
    assert b"Subject: Welcome to your shop" in lines
    assert b"First mail!" in lines

    # The same pages on a phone.
    if screenshot_dir() is not None:
        phone = chromium.new_context(viewport=PHONE, storage_state=context.storage_state())
        phone_page = phone.new_page()
        mailbox = off_loop(directory.get_mailbox, "info@shop.test")
        for name, path in [("home", "/"), ("domain", f"/domains/{domain.pk}/"),
                           ("dns", f"/domains/{domain.pk}/dns/"),
                           ("mailbox", f"/mailboxes/{mailbox.pk}/"),
                           ("setup", f"/mailboxes/{mailbox.pk}/setup/")]:
            phone_page.goto(base + path)
            _shoot(phone_page, f"phone-{name}")
        phone.close()
    context.close()


def _operator_and_waiting_domain() -> Domain:
    User = get_user_model()  # noqa: N806
    carol = User.objects.create_user("carol", "carol@ops.test", WEB_PASSWORD, is_staff=True,
                                     is_superuser=True)
    carol.emailaddress_set.create(email=carol.email, verified=True, primary=True)
    customer = User.objects.create_user("erin", "erin@customers.test", WEB_PASSWORD)
    domain = directory.add_domain("waiting.test", owner=customer, verified=False)
    directory.add_domain("busy.test", owner=customer)
    box = directory.add_mailbox("sales@busy.test", MAILBOX_PASSWORD, quota_bytes=10 * 1024 ** 2)
    box.used_bytes = 3 * 1024 ** 2
    box.save()
    from mailcore import stats

    for kind, n in [("received", 40), ("sent", 12), ("bounced", 2), ("rejected", 5)]:
        stats.record(kind, n)
    return domain


def test_an_operator_logs_in_and_verifies_a_domain_by_hand(
        chromium, live_server, transactional_db, mail_settings) -> None:
    domain = off_loop(_operator_and_waiting_domain)
    page = chromium.new_context(viewport=DESKTOP).new_page()
    page.goto(live_server.url + "/dashboard/")
    page.fill("input[name=login]", "carol@ops.test")
    page.fill("input[name=password]", WEB_PASSWORD)
    _shoot(page, "10-login")
    page.get_by_role("button", name="Sign In").click()
    page.get_by_role("heading", name="Operator dashboard").wait_for()
    assert page.locator("svg.chart-svg").count() == 2
    _shoot(page, "11-dashboard")
    page.get_by_role("button", name="Verify by hand waiting.test").click()
    page.get_by_text("waiting.test is verified by hand").wait_for()
    domain = off_loop(Domain.objects.get, pk=domain.pk)
    assert domain.verified_at is not None
    if screenshot_dir() is not None:
        phone = chromium.new_context(viewport=PHONE)
        phone_page = phone.new_page()
        phone_page.goto(live_server.url + "/accounts/login/")
        _shoot(phone_page, "phone-login")
        phone_page.fill("input[name=login]", "carol@ops.test")
        phone_page.fill("input[name=password]", WEB_PASSWORD)
        phone_page.get_by_role("button", name="Sign In").click()
        phone_page.goto(live_server.url + "/dashboard/")
        _shoot(phone_page, "phone-dashboard")
        phone.close()
