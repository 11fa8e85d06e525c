"""Operator limits per customer: defaults without a row, enforced with a clear form error."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailcore import directory, selfservice
from mailcore.models import CustomerLimits, Domain, Mailbox
from mailcore.selfservice import LimitExceeded
from tests.panel_cast import *  # noqa: F403

pytestmark = pytest.mark.django_db

MB = 1024 ** 2
GOOD = "a much longer Pass phrase 9"


def _limit(user, domains=0, mailboxes=0, storage_mb=0) -> None:
    CustomerLimits.objects.create(user=user, max_domains=domains, max_mailboxes=mailboxes,
                                  max_storage_bytes=storage_mb * MB)


def _mailbox(local: str, quota_mb: int) -> dict[str, str]:
    return {"local_part": local, "display_name": "", "password1": GOOD, "password2": GOOD,
            "quota_mb": str(quota_mb)}


def test_a_customer_without_a_row_gets_the_default_limits(alice_user) -> None:
    limits = selfservice.limits_for(alice_user)
    assert limits.pk is None
    assert (limits.max_domains, limits.max_mailboxes) == (5, 50)
    assert limits.max_storage_bytes == 20 * 1024 ** 3


def test_the_domain_limit_is_a_form_error(as_alice, alice_user) -> None:
    _limit(alice_user, domains=1)
    assert as_alice.post(reverse("domain_add"), {"name": "one.test"}).status_code == 302
    response = as_alice.post(reverse("domain_add"), {"name": "two.test"})
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert errors == ["Your plan allows 1 domain(s); remove one or ask us to raise the limit."]
    assert "Your plan allows 1 domain(s)" in response.content.decode()
    assert not Domain.objects.filter(name="two.test").exists()


def test_the_mailbox_limit_is_a_form_error(as_alice, alice_user, alice_domain) -> None:
    _limit(alice_user, mailboxes=1)
    url = reverse("mailbox_add", args=[alice_domain.pk])
    assert as_alice.post(url, _mailbox("one", 10)).status_code == 302
    response = as_alice.post(url, _mailbox("two", 10))
    assert "allows 1 mailbox(es)" in response.context["form"].non_field_errors()[0]
    assert not Mailbox.objects.filter(local_part="two").exists()


def test_quotas_must_fit_the_storage_limit(as_alice, alice_user, alice_domain) -> None:
    _limit(alice_user, storage_mb=100)
    url = reverse("mailbox_add", args=[alice_domain.pk])
    assert as_alice.post(url, _mailbox("one", 60)).status_code == 302
    response = as_alice.post(url, _mailbox("two", 50))
    assert response.context["form"].errors["quota_mb"] == [
        "Only 40 MB of your plan's 100 MB are left to give to mailboxes."]
    response = as_alice.post(url, _mailbox("two", 0))
    assert "every mailbox needs a quota" in response.context["form"].errors["quota_mb"][0]
    assert as_alice.post(url, _mailbox("two", 40)).status_code == 302


def test_the_new_mailbox_form_offers_what_is_left(as_alice, alice_user, alice_domain) -> None:
    _limit(alice_user, storage_mb=100)
    response = as_alice.get(reverse("mailbox_add", args=[alice_domain.pk]))
    assert response.context["form"]["quota_mb"].initial == 100
    assert "100 MB of your plan" in response.content.decode()


def test_raising_a_quota_is_bounded_too(as_alice, alice_user, alice_domain) -> None:
    _limit(alice_user, storage_mb=100)
    mailbox = directory.add_mailbox("one@alice.test", GOOD, quota_bytes=60 * MB)
    url = reverse("mailbox_edit", args=[mailbox.pk])
    response = as_alice.post(url, {"display_name": "", "quota_mb": "101"})
    assert "Only 100 MB" in response.context["form"].errors["quota_mb"][0]
    assert as_alice.post(url, {"display_name": "", "quota_mb": "100"}).status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.quota_bytes == 100 * MB


def test_zero_means_no_limit(alice_user) -> None:
    _limit(alice_user)
    for i in range(7):
        selfservice.add_domain(alice_user, f"d{i}.test")
    selfservice.check_quota(alice_user, 0)


def test_a_removed_domain_no_longer_counts(alice_user, removals) -> None:
    _limit(alice_user, domains=1)
    domain = selfservice.add_domain(alice_user, "one.test")
    with pytest.raises(LimitExceeded):
        selfservice.add_domain(alice_user, "two.test")
    selfservice.request_removal(domain)
    selfservice.add_domain(alice_user, "two.test")


def test_staff_edit_a_customers_limits(as_carol, alice_user) -> None:
    url = reverse("customer_limits", args=[alice_user.pk])
    assert as_carol.get(url).status_code == 200
    response = as_carol.post(url, {"max_domains": "2", "max_mailboxes": "3",
                                   "max_storage_mb": "1024"})
    assert response["Location"] == reverse("customer_list")
    limits = CustomerLimits.objects.get(user=alice_user)
    assert (limits.max_domains, limits.max_mailboxes, limits.max_storage_bytes) == (
        2, 3, 1024 * MB)
    assert "alice@customers.test" in as_carol.get(reverse("customer_list")).content.decode()


def test_customers_cannot_see_or_edit_limits(as_alice, alice_user, bob_user) -> None:
    assert as_alice.get(reverse("customer_list")).status_code == 404
    response = as_alice.post(reverse("customer_limits", args=[alice_user.pk]),
                             {"max_domains": "99", "max_mailboxes": "99", "max_storage_mb": "0"})
    assert response.status_code == 404
    assert not CustomerLimits.objects.exists()


def test_staff_act_within_the_owners_limits(as_carol, alice_user, alice_domain) -> None:
    _limit(alice_user, mailboxes=1)
    directory.add_mailbox("one@alice.test", GOOD, quota_bytes=MB)
    response = as_carol.post(reverse("mailbox_add", args=[alice_domain.pk]), _mailbox("two", 1))
    assert "allows 1 mailbox(es)" in response.context["form"].non_field_errors()[0]
