"""Tests for the operator's Django admin over domains, mailboxes and aliases."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from mailcore import directory
from mailcore.models import Alias, Domain, Mailbox
from mailcore.passwords import check_password

pytestmark = pytest.mark.django_db

STANDARD_FOLDERS = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}


@pytest.fixture
def carol(client: Client) -> Client:
    """Return a client logged in as carol, a staff superuser."""
    user = get_user_model().objects.create_superuser("carol", "carol@host.test", "carol-pw")
    client.force_login(user)
    return client


@pytest.fixture
def domain() -> Domain:
    return directory.add_domain("example.com")


@pytest.fixture
def mailbox(domain: Domain) -> Mailbox:
    return directory.add_mailbox("bob@example.com", "old-secret", display_name="Bob Builder")


def changelist(model: str) -> str:
    return reverse(f"admin:mailcore_{model}_changelist")


def mailbox_form(domain: Domain, **fields: str) -> dict[str, str]:
    return {
        "domain": str(domain.pk), "local_part": "ann", "display_name": "Ann Example",
        "password": "", "quota_bytes": str(1024**3), "is_active": "on", "pop3_policy": "delete",
        **fields,
    }


def test_it_refuses_the_admin_to_an_anonymous_visitor(client: Client) -> None:
    response = client.get(changelist("mailbox"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_it_lists_searches_and_filters_domains(carol: Client, mailbox: Mailbox) -> None:
    directory.add_domain("other.org", verified=False)
    response = carol.get(changelist("domain"))
    assert response.status_code == 200
    assert {d.name for d in response.context["cl"].result_list} == {"example.com", "other.org"}
    response = carol.get(changelist("domain"), {"q": "other"})
    assert [d.name for d in response.context["cl"].result_list] == ["other.org"]
    response = carol.get(changelist("domain"), {"verified": "no"})
    assert [d.name for d in response.context["cl"].result_list] == ["other.org"]
    response = carol.get(changelist("domain"), {"verified": "yes"})
    assert [d.mailbox_total for d in response.context["cl"].result_list] == [1]


def test_it_lists_searches_and_filters_mailboxes(carol: Client, mailbox: Mailbox) -> None:
    directory.add_domain("other.org")
    zed = directory.add_mailbox("zed@other.org", "pw")
    directory.set_pop3_policy(zed, Mailbox.Pop3Policy.KEEP)

    def addresses(**params: str) -> list[str]:
        response = carol.get(changelist("mailbox"), params)
        assert response.status_code == 200
        return [m.address for m in response.context["cl"].result_list]

    assert addresses() == ["bob@example.com", "zed@other.org"]
    assert addresses(q="builder") == ["bob@example.com"]
    assert addresses(q="zed@other.org") == ["zed@other.org"]
    assert addresses(q="other.org") == ["zed@other.org"]
    assert addresses(pop3_policy__exact="keep") == ["zed@other.org"]
    assert addresses(domain__id__exact=str(mailbox.domain_id)) == ["bob@example.com"]


def test_it_lists_searches_and_filters_aliases(carol: Client, mailbox: Mailbox) -> None:
    directory.add_alias("@example.com", ["bob@example.com"])
    directory.add_alias("info@example.com", ["someone@elsewhere.org"])
    response = carol.get(changelist("alias"))
    assert response.status_code == 200
    assert b"@example.com" in response.content
    response = carol.get(changelist("alias"), {"q": "elsewhere"})
    assert [a.local_part for a in response.context["cl"].result_list] == ["info"]
    response = carol.get(changelist("alias"), {"kind": "catch-all"})
    assert [a.local_part for a in response.context["cl"].result_list] == [""]


def test_it_adds_a_verified_domain_through_the_service(carol: Client) -> None:
    response = carol.post(reverse("admin:mailcore_domain_add"),
                          {"name": "New.Example.ORG", "is_active": "on"})
    assert response.status_code == 302
    domain = Domain.objects.get()
    assert domain.name == "new.example.org"
    assert domain.verified_at is not None


def test_it_refuses_a_domain_already_verified_in_the_admin(carol: Client, domain: Domain
                                                         ) -> None:
    response = carol.post(reverse("admin:mailcore_domain_add"),
                          {"name": "example.com", "is_active": "on"})
    assert response.status_code == 200
    assert "exists already" in str(response.context["adminform"].form.errors)
    assert Domain.objects.count() == 1


def test_an_operators_domain_ends_the_customers_pending_claims(carol: Client) -> None:
    customer = get_user_model().objects.create_user("dan", "dan@customers.test", "pw")
    directory.add_domain("new.example.org", owner=customer, verified=False)
    response = carol.post(reverse("admin:mailcore_domain_add"),
                          {"name": "new.example.org", "is_active": "on"})
    assert response.status_code == 302
    assert Domain.objects.get().owner is None


def test_verifying_a_claim_by_hand_is_refused_while_the_name_is_verified(
        carol: Client, domain: Domain) -> None:
    customer = get_user_model().objects.create_user("dan", "dan@customers.test", "pw")
    claim = directory.add_domain("example.com", owner=customer, verified=False)
    response = carol.post(reverse("admin:mailcore_domain_change", args=[claim.pk]), {
        "owner": str(customer.pk), "is_active": "on",
        "verified_at_0": "2026-01-02", "verified_at_1": "03:04:05"})
    assert response.status_code == 200
    assert "exists already" in str(response.context["adminform"].form.errors)
    claim.refresh_from_db()
    assert claim.verified_at is None


def test_it_refuses_an_invalid_domain_name_in_the_admin(carol: Client) -> None:
    response = carol.post(reverse("admin:mailcore_domain_add"), {"name": "not a domain"})
    assert response.status_code == 200
    assert "invalid domain name" in str(response.context["adminform"].form.errors)
    assert not Domain.objects.exists()


def test_it_adds_a_mailbox_with_a_hashed_password_and_standard_folders(
        carol: Client, domain: Domain) -> None:
    response = carol.post(reverse("admin:mailcore_mailbox_add"),
                          mailbox_form(domain, local_part="Ann", password="tr0ub4dor"))
    assert response.status_code == 302
    mailbox = directory.get_mailbox("ann@example.com")
    assert mailbox.display_name == "Ann Example"
    assert mailbox.quota_bytes == 1024**3
    assert mailbox.password_hash.startswith("$argon2id$")
    assert "tr0ub4dor" not in mailbox.password_hash
    assert check_password(mailbox.address, "tr0ub4dor", mailbox.password_hash)
    assert set(mailbox.folders.values_list("name", flat=True)) == STANDARD_FOLDERS


def test_it_keeps_the_admins_other_choices_when_adding_a_mailbox(
        carol: Client, domain: Domain) -> None:
    form = mailbox_form(domain, password="pw", pop3_policy="keep")
    del form["is_active"]
    assert carol.post(reverse("admin:mailcore_mailbox_add"), form).status_code == 302
    mailbox = directory.get_mailbox("ann@example.com")
    assert mailbox.pop3_policy == Mailbox.Pop3Policy.KEEP
    assert not mailbox.is_active


def test_it_requires_a_password_when_adding_a_mailbox(carol: Client, domain: Domain) -> None:
    response = carol.post(reverse("admin:mailcore_mailbox_add"), mailbox_form(domain))
    assert response.status_code == 200
    assert "password" in response.context["adminform"].form.errors
    assert not Mailbox.objects.exists()


def test_it_refuses_a_duplicate_mailbox_in_the_admin(carol: Client, mailbox: Mailbox) -> None:
    response = carol.post(reverse("admin:mailcore_mailbox_add"),
                          mailbox_form(mailbox.domain, local_part="BOB", password="pw"))
    assert response.status_code == 200
    assert "already exists" in str(response.context["adminform"].form.errors)
    assert Mailbox.objects.count() == 1


def test_it_never_shows_the_password_hash_or_pop3_lock(carol: Client, mailbox: Mailbox) -> None:
    response = carol.get(reverse("admin:mailcore_mailbox_change", args=[mailbox.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert mailbox.password_hash not in page
    assert "pop3_lock" not in page
    assert "INBOX" in page


def test_it_keeps_the_password_when_edited_without_one(carol: Client, mailbox: Mailbox) -> None:
    before = mailbox.password_hash
    form = mailbox_form(mailbox.domain, display_name="Robert", quota_bytes="0")
    response = carol.post(reverse("admin:mailcore_mailbox_change", args=[mailbox.pk]), form)
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.display_name == "Robert"
    assert mailbox.quota_bytes == 0
    assert mailbox.password_hash == before


def test_it_changes_the_password_when_edited_with_one(carol: Client, mailbox: Mailbox) -> None:
    form = mailbox_form(mailbox.domain, password="new-secret")
    response = carol.post(reverse("admin:mailcore_mailbox_change", args=[mailbox.pk]), form)
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert check_password(mailbox.address, "new-secret", mailbox.password_hash)
    assert not check_password(mailbox.address, "old-secret", mailbox.password_hash)


def test_it_deletes_a_mailbox_from_the_admin(carol: Client, mailbox: Mailbox) -> None:
    url = reverse("admin:mailcore_mailbox_delete", args=[mailbox.pk])
    assert carol.post(url, {"post": "yes"}).status_code == 302
    assert not Mailbox.objects.exists()


def test_it_adds_a_catch_all_alias_in_the_admin(carol: Client, mailbox: Mailbox) -> None:
    response = carol.post(reverse("admin:mailcore_alias_add"), {
        "domain": str(mailbox.domain_id), "local_part": "",
        "destination_list": "bob@example.com\nSomeone@Elsewhere.org", "is_active": "on",
    })
    assert response.status_code == 302
    alias = Alias.objects.get()
    assert alias.is_catch_all
    assert alias.destinations == ["bob@example.com", "someone@elsewhere.org"]


def test_it_edits_alias_destinations_in_the_admin(carol: Client, mailbox: Mailbox) -> None:
    alias = directory.add_alias("info@example.com", ["bob@example.com"])
    response = carol.post(reverse("admin:mailcore_alias_change", args=[alias.pk]), {
        "destination_list": "x@elsewhere.org, y@elsewhere.org", "is_active": "on",
    })
    assert response.status_code == 302
    alias.refresh_from_db()
    assert alias.destinations == ["x@elsewhere.org", "y@elsewhere.org"]


def test_it_refuses_a_bad_alias_destination_in_the_admin(carol: Client, mailbox: Mailbox) -> None:
    response = carol.post(reverse("admin:mailcore_alias_add"), {
        "domain": str(mailbox.domain_id), "local_part": "info",
        "destination_list": "nobody", "is_active": "on",
    })
    assert response.status_code == 200
    assert "not an address" in str(response.context["adminform"].form.errors)
    assert not Alias.objects.exists()


def test_it_removes_selected_domains_with_their_mailboxes(carol: Client, mailbox: Mailbox) -> None:
    response = carol.post(changelist("domain"), {
        "action": "delete_selected", "_selected_action": [str(mailbox.domain_id)], "post": "yes",
    })
    assert response.status_code == 302
    assert not Domain.objects.exists()
    assert not Mailbox.objects.exists()


def test_it_shows_a_domains_change_page(carol: Client, domain: Domain) -> None:
    response = carol.get(reverse("admin:mailcore_domain_change", args=[domain.pk]))
    assert response.status_code == 200
    assert domain.verification_token in response.content.decode()


# Mark as verified -----------------------------------------------------------------------------

def _claim(owner_name: str, name: str = "claimed.test") -> Domain:
    owner = get_user_model().objects.create_user(owner_name, f"{owner_name}@customers.test", "pw")
    return directory.add_domain(name, owner=owner, verified=False)


def test_the_change_page_button_marks_a_claim_verified_and_ends_the_others(
        carol: Client, mailoutbox, django_capture_on_commit_callbacks) -> None:
    mine, other = _claim("dan"), _claim("eve")
    page = carol.get(reverse("admin:mailcore_domain_change", args=[mine.pk])).content.decode()
    verify_url = reverse("admin:mailcore_domain_verify", args=[mine.pk])
    assert f'action="{verify_url}"' in page and "Mark as verified" in page
    assert carol.get(verify_url).status_code == 405  # a change: POST only
    with django_capture_on_commit_callbacks(execute=True):
        response = carol.post(verify_url, follow=True)
    assert "is verified and receives mail" in response.content.decode()
    mine.refresh_from_db()
    assert mine.verified_at is not None
    assert not Domain.objects.filter(pk=other.pk).exists()
    assert [m.to for m in mailoutbox] == [["eve@customers.test"]]
    page = carol.get(reverse("admin:mailcore_domain_change", args=[mine.pk])).content.decode()
    assert "Mark as verified" not in page


def test_the_list_action_marks_claims_verified_by_the_claims_rules(
        carol: Client, domain: Domain) -> None:
    fresh, held = _claim("dan"), _claim("eve", name="example.com")
    response = carol.post(changelist("domain"), {
        "action": "mark_verified", "_selected_action": [str(fresh.pk), str(held.pk)]},
        follow=True)
    text = " ".join(str(m) for m in response.context["messages"])
    assert "claimed.test is verified" in text, text
    assert "example.com (claim" in text and "was not verified" in text
    fresh.refresh_from_db()
    held.refresh_from_db()
    assert fresh.verified_at is not None and held.verified_at is None


def test_only_staff_with_the_change_right_may_mark_a_domain_verified(client: Client) -> None:
    claim = _claim("dan")
    viewer = get_user_model().objects.create_user("vic", "vic@host.test", "pw", is_staff=True)
    client.force_login(viewer)
    response = client.post(reverse("admin:mailcore_domain_verify", args=[claim.pk]))
    assert response.status_code == 403
    claim.refresh_from_db()
    assert claim.verified_at is None


def test_admin_pages_name_the_icon_and_favicon_ico_leads_to_it(carol: Client) -> None:
    page = carol.get(reverse("admin:index")).content.decode()
    assert 'rel="icon" href="/static/panel/favicon.svg"' in page
    assert "Django administration" in page  # the admin's own header stays
    response = carol.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/panel/favicon.svg"
