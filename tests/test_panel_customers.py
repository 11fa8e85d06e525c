"""Customer pages: domains, mailboxes, aliases, forwards, app passwords, and who may see them."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from mailcore import directory, selfservice
from mailcore.directory import Route
from mailcore.models import Alias, AppPassword, Domain, Mailbox
from mailcore.passwords import check_password
from mailcore.store.delivery import deliver
from tests.panel_cast import *  # noqa: F403

pytestmark = pytest.mark.django_db

MB = 1024 ** 2
NEW_PASSWORD = "a much longer Pass phrase 9"


@pytest.fixture
def alias(alice_domain) -> Alias:
    return directory.add_alias("sales@alice.test", ["hello@alice.test", "boss@elsewhere.test"])


@pytest.fixture
def app_password(alice_mailbox) -> AppPassword:
    return directory.add_app_password(alice_mailbox, "Phone")[0]


def _urls(domain: Domain, mailbox: Mailbox, alias: Alias, app: AppPassword
          ) -> list[tuple[str, str]]:
    """Return (method, url) for every page that shows or changes one of alice's objects."""
    d, m = domain.pk, mailbox.pk
    return [
        ("get", reverse("domain_detail", args=[d])),
        ("get", reverse("domain_dns", args=[d])),
        ("post", reverse("domain_dns", args=[d])),
        ("get", reverse("domain_remove", args=[d])),
        ("post", reverse("domain_remove", args=[d])),
        ("get", reverse("catch_all", args=[d])),
        ("post", reverse("catch_all", args=[d])),
        ("get", reverse("sender_checks", args=[d])),
        ("post", reverse("sender_checks", args=[d])),
        ("get", reverse("spam_filter", args=[d])),
        ("post", reverse("spam_filter", args=[d])),
        ("get", reverse("refused_mail", args=[d])),
        ("get", reverse("mailbox_add", args=[d])),
        ("post", reverse("mailbox_add", args=[d])),
        ("get", reverse("alias_add", args=[d])),
        ("post", reverse("alias_add", args=[d])),
        ("get", reverse("mailbox_detail", args=[m])),
        ("get", reverse("mailbox_edit", args=[m])),
        ("post", reverse("mailbox_edit", args=[m])),
        ("get", reverse("mailbox_password", args=[m])),
        ("post", reverse("mailbox_password", args=[m])),
        ("post", reverse("mailbox_toggle", args=[m])),
        ("post", reverse("mailbox_pop3", args=[m])),
        ("get", reverse("mailbox_forward", args=[m])),
        ("post", reverse("mailbox_forward", args=[m])),
        ("get", reverse("mailbox_delete", args=[m])),
        ("post", reverse("mailbox_delete", args=[m])),
        ("get", reverse("mailbox_setup", args=[m])),
        ("get", reverse("mailbox_mobileconfig", args=[m])),
        ("post", reverse("app_password_add", args=[m])),
        ("post", reverse("app_password_revoke", args=[m, app.pk])),
        ("get", reverse("alias_edit", args=[alias.pk])),
        ("post", reverse("alias_edit", args=[alias.pk])),
        ("post", reverse("alias_delete", args=[alias.pk])),
    ]


@pytest.fixture
def alice_urls(alice_domain, alice_mailbox, alias, app_password) -> list[tuple[str, str]]:
    return _urls(alice_domain, alice_mailbox, alias, app_password)


def test_it_refuses_every_page_of_alices_objects_to_bob_with_404(
        as_bob: Client, alice_urls, removals) -> None:
    for method, url in alice_urls:
        response = getattr(as_bob, method)(url, {"confirm": "alice.test", "name": "x"})
        assert response.status_code == 404, (method, url)
    assert Mailbox.objects.filter(local_part="hello").exists()
    assert Domain.objects.get(name="alice.test").is_active
    assert Alias.objects.filter(local_part="sales").exists()
    assert AppPassword.objects.count() == 1
    assert removals == []


def test_it_sends_anonymous_visitors_to_log_in(client: Client, alice_urls) -> None:
    pages = alice_urls + [("get", reverse("domain_add")), ("get", reverse("dashboard"))]
    for method, url in pages:
        response = getattr(client, method)(url)
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith(reverse("account_login")), (method, url)


def test_it_shows_every_page_to_the_owner(as_alice: Client, alice_urls) -> None:
    for method, url in alice_urls:
        if method == "get":
            assert as_alice.get(url).status_code == 200, url


def test_staff_reach_a_customers_domain(as_carol: Client, alice_domain, alice_mailbox) -> None:
    assert as_carol.get(reverse("domain_detail", args=[alice_domain.pk])).status_code == 200
    assert as_carol.get(reverse("mailbox_detail", args=[alice_mailbox.pk])).status_code == 200


def test_the_landing_page_invites_anonymous_visitors_to_sign_up(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert reverse("account_signup") in response.content.decode()


def test_home_lists_only_the_customers_own_domains(as_alice, alice_domain, bob_user) -> None:
    directory.add_domain("bob.test", owner=bob_user, verified=False)
    page = as_alice.get("/").content.decode()
    assert "alice.test" in page
    assert "bob.test" not in page


# Domains ---------------------------------------------------------------------------------------

def test_a_customer_adds_an_unverified_domain(as_alice: Client, alice_user) -> None:
    response = as_alice.post(reverse("domain_add"), {"name": "New-Domain.TEST."})
    domain = Domain.objects.get(name="new-domain.test")
    assert response["Location"] == reverse("domain_dns", args=[domain.pk])
    assert domain.owner == alice_user
    assert domain.verified_at is None
    assert domain.dkim_private_key
    assert directory.resolve("x@new-domain.test").route is Route.NOT_HOSTED


def test_a_staff_members_domain_is_verified_at_once(as_carol: Client) -> None:
    as_carol.post(reverse("domain_add"), {"name": "ops.test"})
    assert Domain.objects.get(name="ops.test").verified_at is not None


@pytest.mark.parametrize("name, error", [
    ("not a domain", "Enter a domain name"),
    ("alice.test", "already exists"),
])
def test_it_explains_a_refused_domain_next_to_the_field(as_alice, alice_domain, name, error
                                                        ) -> None:
    response = as_alice.post(reverse("domain_add"), {"name": name})
    assert response.status_code == 200
    assert error in " ".join(response.context["form"].errors["name"])


def test_staff_verify_a_domain_by_hand(as_carol: Client, alice_user) -> None:
    domain = directory.add_domain("waiting.test", owner=alice_user, verified=False)
    response = as_carol.post(reverse("domain_verify", args=[domain.pk]),
                             {"next": reverse("dashboard")})
    assert response["Location"] == reverse("dashboard")
    domain.refresh_from_db()
    assert domain.verified_at is not None


def test_a_customer_cannot_verify_by_hand(as_alice: Client, alice_user) -> None:
    domain = directory.add_domain("waiting.test", owner=alice_user, verified=False)
    assert as_alice.post(reverse("domain_verify", args=[domain.pk])).status_code == 404
    domain.refresh_from_db()
    assert domain.verified_at is None


def test_removal_lists_what_goes_then_deactivates_and_queues_the_deletion(
        as_alice: Client, alice_domain, alice_mailbox, alias, removals,
        django_capture_on_commit_callbacks) -> None:
    deliver(b"Subject: hi\r\n\r\nbody\r\n", "x@elsewhere.test", [alice_mailbox.pk])
    page = as_alice.get(reverse("domain_remove", args=[alice_domain.pk])).content.decode()
    assert "hello@alice.test" in page and "sales@alice.test" in page
    assert "1 message" in page

    response = as_alice.post(reverse("domain_remove", args=[alice_domain.pk]),
                             {"confirm": "wrong.test"})
    assert "Type alice.test exactly" in " ".join(response.context["form"].errors["confirm"])

    with django_capture_on_commit_callbacks(execute=True):
        response = as_alice.post(reverse("domain_remove", args=[alice_domain.pk]),
                                 {"confirm": "alice.test"})
    assert response["Location"] == reverse("home")
    assert removals == [alice_domain.pk]
    alice_domain.refresh_from_db()
    assert not alice_domain.is_active
    assert directory.resolve("hello@alice.test").route is Route.NOT_HOSTED
    # The data stays until the worker runs; then the domain is gone.
    assert Mailbox.objects.filter(pk=alice_mailbox.pk).exists()
    assert as_alice.get(reverse("domain_detail", args=[alice_domain.pk])).status_code == 404

    from mailcore.tasks import remove_domain_data
    assert remove_domain_data(alice_domain.pk) is True
    assert not Domain.objects.filter(pk=alice_domain.pk).exists()
    assert not Mailbox.objects.filter(pk=alice_mailbox.pk).exists()


def test_the_removal_task_keeps_a_domain_an_operator_reactivated(alice_domain) -> None:
    from mailcore.tasks import remove_domain_data

    assert remove_domain_data(alice_domain.pk) is False
    assert Domain.objects.filter(pk=alice_domain.pk).exists()
    assert remove_domain_data(999999) is False


def test_catch_all_is_set_and_cleared(as_alice: Client, alice_domain, alice_mailbox) -> None:
    url = reverse("catch_all", args=[alice_domain.pk])
    as_alice.post(url, {"destinations": "hello@alice.test"})
    assert directory.resolve("anything@alice.test").mailbox_ids == {alice_mailbox.pk}
    as_alice.post(url, {"destinations": ""})
    assert directory.resolve("anything@alice.test").route is Route.UNKNOWN_USER


def test_the_owner_chooses_to_quarantine_what_dmarc_would_reject(
        as_alice: Client, alice_domain) -> None:
    url = reverse("sender_checks", args=[alice_domain.pk])
    assert b"Refuse it, as the sender" in as_alice.get(url).content
    response = as_alice.post(url, {"dmarc_reject": "quarantine"})
    assert response.status_code == 302
    alice_domain.refresh_from_db()
    assert alice_domain.dmarc_reject == Domain.DmarcReject.QUARANTINE
    assert directory.quarantines_dmarc_rejects({"alice.test"})
    detail = as_alice.get(reverse("domain_detail", args=[alice_domain.pk])).content
    assert b"rejects goes to the recipient's Junk folder" in detail
    as_alice.post(url, {"dmarc_reject": "reject"})
    assert not directory.quarantines_dmarc_rejects({"alice.test"})


def test_a_dmarc_choice_not_offered_is_a_form_error(as_alice: Client, alice_domain) -> None:
    url = reverse("sender_checks", args=[alice_domain.pk])
    response = as_alice.post(url, {"dmarc_reject": "deliver"})
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    alice_domain.refresh_from_db()
    assert alice_domain.dmarc_reject == Domain.DmarcReject.FOLLOW


def test_the_owner_sets_spam_sensitivity_and_greylisting(as_alice: Client,
                                                        alice_domain) -> None:
    url = reverse("spam_filter", args=[alice_domain.pk])
    assert b"Spam sensitivity" in as_alice.get(url).content
    response = as_alice.post(url, {"spam_sensitivity": "strict"})  # greylisting unticked
    assert response.status_code == 302
    alice_domain.refresh_from_db()
    assert alice_domain.spam_sensitivity == Domain.SpamSensitivity.STRICT
    assert not alice_domain.greylisting
    detail = as_alice.get(reverse("domain_detail", args=[alice_domain.pk])).content
    assert b"Greylisting is off" in detail
    response = as_alice.post(url, {"spam_sensitivity": "loud", "greylisting": "on"})
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    alice_domain.refresh_from_db()
    assert alice_domain.spam_sensitivity == Domain.SpamSensitivity.STRICT


def test_the_owner_sees_mail_refused_for_the_domain_and_why(
        as_alice: Client, alice_domain, bob_user, settings) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from mailcore.inbound import refusals
    from mailcore.models import Refusal

    bob_domain = directory.add_domain("bob.test", owner=bob_user)
    refusals.record(["hello@alice.test", "x@bob.test"], "spammer@remote.test", "192.0.2.9",
                    False, "Message refused as spam (spam score 16.2)")
    refusals.record(["hello@alice.test"], "", "192.0.2.10", True, "Greylisted, try again later")
    old = Refusal.objects.create(domain=alice_domain, at=timezone.now() - timedelta(days=30),
                                 sender="old@remote.test", recipients="hello@alice.test",
                                 client_ip="192.0.2.1", reason="long ago")
    page = as_alice.get(reverse("refused_mail", args=[alice_domain.pk])).content.decode()
    assert "&lt;spammer@remote.test&gt;" in page and "spam score 16.2" in page
    assert "Refused (550)" in page and "Deferred (451)" in page and "(a bounce)" in page
    assert "old@remote.test" not in page and "x@bob.test" not in page
    # bob's domain has its own row; alice never sees it, bob never sees alice's.
    assert Refusal.objects.filter(domain=bob_domain).count() == 1
    settings.INBOUND_REFUSALS_DAYS = 7
    assert refusals.prune() == 1
    assert not Refusal.objects.filter(pk=old.pk).exists()


# Mailboxes -------------------------------------------------------------------------------------

def _mailbox_form(**fields) -> dict[str, str]:
    return {"local_part": "Ann", "display_name": "Ann Example", "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD, "quota_mb": "500", **fields}


def test_a_customer_creates_a_mailbox(as_alice: Client, alice_domain) -> None:
    response = as_alice.post(reverse("mailbox_add", args=[alice_domain.pk]), _mailbox_form())
    mailbox = Mailbox.objects.get(local_part="ann", domain=alice_domain)
    assert response["Location"] == reverse("mailbox_detail", args=[mailbox.pk])
    assert mailbox.display_name == "Ann Example"
    assert mailbox.quota_bytes == 500 * MB
    assert check_password(mailbox.address, NEW_PASSWORD, mailbox.password_hash)
    assert set(mailbox.folders.values_list("name", flat=True)) >= {"INBOX", "Sent"}
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert messages == ["Mailbox ann@alice.test is created."]


@pytest.mark.parametrize("fields, field, error", [
    ({"password1": "short", "password2": "short"}, "password1", "too short"),
    ({"password1": "12345678901", "password2": "12345678901"}, "password1", "entirely numeric"),
    ({"password2": "something else"}, "password2", "differ"),
    ({"local_part": "two words"}, "local_part", "no spaces"),
    ({"local_part": "hello"}, "local_part", "already exists"),
    ({"local_part": "sales"}, "local_part", "already an alias"),
])
def test_it_explains_a_refused_mailbox_next_to_the_field(
        as_alice, alice_domain, alice_mailbox, alias, fields, field, error) -> None:
    response = as_alice.post(reverse("mailbox_add", args=[alice_domain.pk]),
                             _mailbox_form(**fields))
    assert response.status_code == 200
    assert error in " ".join(response.context["form"].errors[field])
    assert 'aria-invalid="true"' in response.content.decode()


def test_a_password_like_the_address_is_refused(as_alice, alice_domain) -> None:
    response = as_alice.post(reverse("mailbox_add", args=[alice_domain.pk]), _mailbox_form(
        local_part="johnsmithers", password1="johnsmithers1", password2="johnsmithers1"))
    assert "too similar" in " ".join(response.context["form"].errors["password1"])


def test_the_owner_changes_a_mailbox_password(as_alice, alice_mailbox) -> None:
    as_alice.post(reverse("mailbox_password", args=[alice_mailbox.pk]),
                  {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    alice_mailbox.refresh_from_db()
    assert check_password(alice_mailbox.address, NEW_PASSWORD, alice_mailbox.password_hash)


def test_the_owner_edits_name_and_quota(as_alice, alice_mailbox) -> None:
    as_alice.post(reverse("mailbox_edit", args=[alice_mailbox.pk]),
                  {"display_name": "New Name", "quota_mb": "250"})
    alice_mailbox.refresh_from_db()
    assert (alice_mailbox.display_name, alice_mailbox.quota_bytes) == ("New Name", 250 * MB)


def test_a_disabled_mailbox_receives_nothing_until_enabled(as_alice, alice_mailbox) -> None:
    url = reverse("mailbox_toggle", args=[alice_mailbox.pk])
    as_alice.post(url)
    assert directory.resolve("hello@alice.test").route is Route.UNKNOWN_USER
    as_alice.post(url)
    assert directory.resolve("hello@alice.test").mailbox_ids == {alice_mailbox.pk}


def test_the_pop3_policy_is_saved(as_alice, alice_mailbox) -> None:
    as_alice.post(reverse("mailbox_pop3", args=[alice_mailbox.pk]), {"pop3_policy": "keep"})
    alice_mailbox.refresh_from_db()
    assert alice_mailbox.pop3_policy == "keep"


def test_the_quota_bar_shows_usage(as_alice, alice_mailbox) -> None:
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(used_bytes=25 * MB)
    page = as_alice.get(reverse("mailbox_detail", args=[alice_mailbox.pk])).content.decode()
    assert "width: 25%" in page
    assert "25.0 MB of 100.0 MB" in page.replace("\xa0", " ")


def test_deleting_a_mailbox_asks_first_then_removes_it_and_its_forward(
        as_alice, alice_mailbox) -> None:
    as_alice.post(reverse("mailbox_forward", args=[alice_mailbox.pk]),
                  {"destinations": "me@elsewhere.test", "keep_copy": "on"})
    url = reverse("mailbox_delete", args=[alice_mailbox.pk])
    assert "0 messages" in as_alice.get(url).content.decode()
    as_alice.post(url)
    assert not Mailbox.objects.filter(pk=alice_mailbox.pk).exists()
    assert not Alias.objects.filter(local_part="hello").exists()


# Forwards and aliases -------------------------------------------------------------------------

def test_a_forward_keeping_a_copy_delivers_here_and_there(as_alice, alice_mailbox) -> None:
    url = reverse("mailbox_forward", args=[alice_mailbox.pk])
    as_alice.post(url, {"destinations": "me@elsewhere.test, HELLO@alice.test",
                        "keep_copy": "on"})
    resolution = directory.resolve("hello@alice.test")
    assert resolution.mailbox_ids == {alice_mailbox.pk}
    assert resolution.remote == {"me@elsewhere.test"}
    assert Alias.objects.get(local_part="hello").destinations == [
        "hello@alice.test", "me@elsewhere.test"]

    as_alice.post(url, {"destinations": "me@elsewhere.test"})
    resolution = directory.resolve("hello@alice.test")
    assert (resolution.mailbox_ids, resolution.remote) == (set(), {"me@elsewhere.test"})

    as_alice.post(url, {"destinations": ""})
    assert directory.resolve("hello@alice.test").mailbox_ids == {alice_mailbox.pk}
    assert not Alias.objects.filter(local_part="hello").exists()


def test_a_forward_to_a_non_address_is_refused_next_to_the_field(as_alice, alice_mailbox
                                                                  ) -> None:
    response = as_alice.post(reverse("mailbox_forward", args=[alice_mailbox.pk]),
                             {"destinations": "not-an-address"})
    assert "Not an email address: not-an-address" in response.context["form"].errors[
        "destinations"]


def test_aliases_are_created_edited_and_deleted(as_alice, alice_domain, alice_mailbox) -> None:
    as_alice.post(reverse("alias_add", args=[alice_domain.pk]),
                  {"local_part": "info", "destinations": "hello@alice.test\nx@elsewhere.test"})
    alias = Alias.objects.get(local_part="info")
    assert directory.resolve("info@alice.test").remote == {"x@elsewhere.test"}
    as_alice.post(reverse("alias_edit", args=[alias.pk]), {"destinations": "hello@alice.test"})
    alias.refresh_from_db()
    assert alias.destinations == ["hello@alice.test"]
    as_alice.post(reverse("alias_delete", args=[alias.pk]))
    assert not Alias.objects.filter(pk=alias.pk).exists()


def test_an_alias_on_a_mailbox_address_points_to_forwarding(as_alice, alice_domain,
                                                            alice_mailbox) -> None:
    response = as_alice.post(reverse("alias_add", args=[alice_domain.pk]),
                             {"local_part": "hello", "destinations": "x@elsewhere.test"})
    assert "set up forwarding" in " ".join(response.context["form"].errors["local_part"])


# App passwords ---------------------------------------------------------------------------------

def test_an_app_password_is_shown_once_and_works(as_alice, alice_mailbox) -> None:
    response = as_alice.post(reverse("app_password_add", args=[alice_mailbox.pk]),
                             {"name": "Laptop"})
    secret = response.context["secret"]
    assert secret in response.content.decode()
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    principal = directory.log_in("hello@alice.test", secret, "127.0.0.1")
    assert principal.mailbox_id == alice_mailbox.pk
    page = as_alice.get(reverse("mailbox_detail", args=[alice_mailbox.pk])).content.decode()
    assert "Laptop" in page and secret not in page
    assert "0\xa0minutes ago" in page  # its last use, by the login above


def test_a_revoked_app_password_stops_working(as_alice, alice_mailbox) -> None:
    app, secret = directory.add_app_password(alice_mailbox, "Phone")
    as_alice.post(reverse("app_password_revoke", args=[alice_mailbox.pk, app.pk]))
    with pytest.raises(directory.LoginRefused):
        directory.log_in("hello@alice.test", secret, "127.0.0.1")


def test_an_app_password_of_another_mailbox_is_404(as_alice, alice_domain, alice_mailbox
                                                   ) -> None:
    other = directory.add_mailbox("other@alice.test", PASSWORD)  # noqa: F405
    app, _ = directory.add_app_password(other, "Phone")
    url = reverse("app_password_revoke", args=[alice_mailbox.pk, app.pk])
    assert as_alice.post(url).status_code == 404
    assert AppPassword.objects.filter(pk=app.pk).exists()


# Client setup ----------------------------------------------------------------------------------

def test_the_setup_page_lists_servers_ports_and_security(as_alice, alice_mailbox, settings
                                                          ) -> None:
    settings.MAIL_HOSTNAME = "mx.host.test"
    page = as_alice.get(reverse("mailbox_setup", args=[alice_mailbox.pk])).content.decode()
    for text in ("mx.host.test", "IMAP", "POP3", "SMTP", str(settings.POP3S_PORT),
                 str(settings.SUBMISSION_PORT), "SSL/TLS", "STARTTLS",
                 "/mail/config-v1.1.xml?emailaddress=hello%40alice.test", "mobileconfig"):
        assert text in page, text


# The way to webmail ---------------------------------------------------------------------------

def test_the_navigation_and_the_home_page_lead_to_webmail(as_alice, alice_domain):
    page = as_alice.get(reverse("home")).content.decode()
    webmail = reverse("webmail:index")
    assert f'<a href="{webmail}">Webmail</a>' in page  # the navigation, on every page
    assert 'id="open-webmail"' in page
    assert f'<a href="{webmail}">Webmail</a>' in Client().get(
        reverse("account_login")).content.decode()


def test_each_mailbox_page_opens_webmail_with_its_address(as_alice, alice_mailbox):
    page = as_alice.get(reverse("mailbox_detail", args=[alice_mailbox.pk])).content.decode()
    link = f'{reverse("webmail:login")}?address=hello%40alice.test'
    assert f'href="{link}"' in page
    login = Client().get(link).content.decode()
    assert 'value="hello@alice.test"' in login


# A claim not yet verified ------------------------------------------------------------------------

@pytest.fixture
def claim(alice_user) -> Domain:
    return directory.add_domain("pending.test", owner=alice_user, verified=False)


def test_the_domain_pages_say_how_to_verify_in_development(as_alice, claim, settings):
    settings.DEBUG = True
    for name in ("domain_detail", "domain_dns"):
        page = as_alice.get(reverse(name, args=[claim.pk])).content.decode()
        assert "manage.py domain verify pending.test" in page
    settings.DEBUG = False
    for name in ("domain_detail", "domain_dns"):
        response = as_alice.get(reverse(name, args=[claim.pk]))
        assert response.status_code == 200
        assert b"Not verified yet" in response.content
        assert b"manage.py domain verify" not in response.content


def test_the_mailbox_page_says_mail_will_not_arrive_yet(as_alice, claim):
    mailbox = directory.add_mailbox("me@pending.test", NEW_PASSWORD, domain=claim)
    page = as_alice.get(reverse("mailbox_detail", args=[mailbox.pk])).content.decode()
    assert "mail sent to me@pending.test will not arrive" in page
    selfservice.verify_domain(claim)
    page = as_alice.get(reverse("mailbox_detail", args=[mailbox.pk])).content.decode()
    assert "will not arrive" not in page
