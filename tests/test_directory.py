"""Recipient routing through mailboxes, aliases and catch-alls, and mailbox logins."""

from __future__ import annotations

import pytest
from django.utils import timezone

from mailcore import directory
from mailcore.directory import LoginRefused, Route, resolve
from mailcore.models import Folder
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def hosted(db):
    directory.add_domain("example.test")
    alice = directory.add_mailbox("alice@example.test", PASSWORD)
    bob = directory.add_mailbox("bob@example.test", PASSWORD)
    return alice, bob


def test_a_new_mailbox_has_the_standard_folders(hosted):
    alice, _ = hosted
    folders = dict(Folder.objects.for_mailbox(alice).values_list("name", "special_use"))
    assert folders == {"INBOX": "", "Sent": "\\Sent", "Drafts": "\\Drafts",
                       "Trash": "\\Trash", "Junk": "\\Junk", "Archive": "\\Archive"}
    validities = Folder.objects.for_mailbox(alice).values_list("uidvalidity", flat=True)
    assert len(set(validities)) == 6


def test_it_routes_a_mailbox_address_case_insensitively(hosted):
    alice, _ = hosted
    result = resolve("Alice@EXAMPLE.test")
    assert result.route is Route.LOCAL
    assert result.mailbox_ids == {alice.pk}


def test_it_refuses_unknown_users_and_foreign_domains(hosted):
    assert resolve("nobody@example.test").route is Route.UNKNOWN_USER
    assert resolve("alice@elsewhere.test").route is Route.NOT_HOSTED
    assert resolve("not an address").route is Route.INVALID


def test_an_unverified_domain_does_not_receive(db):
    domain = directory.add_domain("pending.test", verified=False)
    directory.add_mailbox("x@pending.test", PASSWORD, domain=domain)
    assert resolve("x@pending.test").route is Route.NOT_HOSTED
    domain.verified_at = timezone.now()
    domain.save()
    assert resolve("x@pending.test").route is Route.LOCAL


def test_an_alias_expands_to_local_and_remote_destinations(hosted):
    alice, bob = hosted
    directory.add_alias("team@example.test",
                        ["alice@example.test", "bob@example.test", "carol@remote.test"])
    result = resolve("team@example.test")
    assert result.mailbox_ids == {alice.pk, bob.pk}
    assert result.remote == {"carol@remote.test"}


def test_a_forward_that_keeps_a_copy_delivers_to_the_mailbox_too(hosted):
    alice, _ = hosted
    directory.add_alias("alice@example.test", ["alice@example.test", "alice@remote.test"])
    result = resolve("alice@example.test")
    assert result.mailbox_ids == {alice.pk}
    assert result.remote == {"alice@remote.test"}


def test_the_catch_all_takes_unknown_names_only(hosted):
    alice, bob = hosted
    directory.add_alias("@example.test", ["bob@example.test"])
    assert resolve("anything@example.test").mailbox_ids == {bob.pk}
    assert resolve("alice@example.test").mailbox_ids == {alice.pk}


def test_alias_loops_end(hosted):
    directory.add_alias("a@example.test", ["b@example.test"])
    directory.add_alias("b@example.test", ["a@example.test"])
    assert resolve("a@example.test").route is Route.UNKNOWN_USER


def test_a_full_mailbox_routes_as_over_quota(hosted):
    alice, _ = hosted
    alice.quota_bytes, alice.used_bytes = 1000, 1000
    alice.save()
    assert resolve("alice@example.test").route is Route.OVER_QUOTA


def test_it_authenticates_with_the_right_password_only(hosted):
    alice, _ = hosted
    assert directory.log_in("ALICE@example.test", PASSWORD, "127.0.0.1").mailbox_id == alice.pk
    with pytest.raises(LoginRefused):
        directory.log_in("alice@example.test", "wrong", "127.0.0.1")
    with pytest.raises(LoginRefused):
        directory.log_in("nobody@example.test", PASSWORD, "127.0.0.1")


def test_a_disabled_mailbox_cannot_log_in(hosted):
    alice, _ = hosted
    alice.is_active = False
    alice.save()
    with pytest.raises(LoginRefused):
        directory.log_in("alice@example.test", PASSWORD, "127.0.0.1")


def test_repeated_failures_refuse_the_address_not_the_user(hosted, settings):
    settings.AUTH_MAX_FAILURES = 3
    for _ in range(3):
        with pytest.raises(LoginRefused):
            directory.log_in("alice@example.test", "wrong", "192.0.2.1")
    assert directory.log_in("alice@example.test", PASSWORD, "192.0.2.9")
    with pytest.raises(LoginRefused) as refused:
        directory.log_in("bob@example.test", PASSWORD, "192.0.2.1")
    assert refused.value.rate_limited
    assert directory.log_in("bob@example.test", PASSWORD, "192.0.2.9")


def test_plaintext_passwords_need_tls_unless_on_loopback(settings):
    settings.PLAINTEXT_AUTH = "loopback"
    assert directory.plaintext_allowed(False, "127.0.0.1")
    assert directory.plaintext_allowed(False, "::1")
    assert not directory.plaintext_allowed(False, "192.0.2.1")
    assert directory.plaintext_allowed(True, "192.0.2.1")
    settings.PLAINTEXT_AUTH = "never"
    assert not directory.plaintext_allowed(False, "127.0.0.1")


def test_an_app_password_opens_the_mailbox_and_records_its_use(hosted):
    alice, _ = hosted
    app, secret = directory.add_app_password(alice, "Phone")
    assert len(secret) == 19 and app.password_hash != secret
    assert directory.log_in("alice@example.test", secret, "127.0.0.1").mailbox_id == alice.pk
    app.refresh_from_db()
    assert app.last_used_at is not None
    app.delete()
    with pytest.raises(LoginRefused):
        directory.log_in("alice@example.test", secret, "127.0.0.1")
