"""Webmail's spam pieces: a mailbox's allow and block lists, the Spam / Not spam buttons,
and the trust line on each message."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from mailcore import directory
from mailcore.inbound.spam import policy_for
from mailcore.models import SenderRule
from tests.conftest import PASSWORD
from tests.test_webmail_helpers import csrf_client, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def add(client: Client, kind: str, sender: str):
    return client.post(reverse("webmail:sender_add"), {"kind": kind, "sender": sender})


def test_a_mailbox_keeps_allow_and_block_lists_that_the_filter_reads(alice, bob):
    client = sign_in(Client(), "alice@example.test")
    assert add(client, "block", " Spammer@Remote.TEST ").status_code == 302
    assert add(client, "allow", "@friends.test").status_code == 302
    assert sorted(SenderRule.objects.filter(mailbox=alice).values_list("kind", "pattern")) == [
        ("allow", "friends.test"), ("block", "spammer@remote.test")]
    page = client.get(reverse("webmail:settings")).content.decode()
    assert "spammer@remote.test" in page and "friends.test" in page
    policy = policy_for([alice.pk], ["alice@example.test"], ["spammer@remote.test"])
    assert policy.blocked and not policy.allowed
    assert policy_for([alice.pk], ["alice@example.test"], ["ann@mx.friends.test"]).allowed
    # bob's own mail is not touched by alice's lists.
    assert not policy_for([bob.pk], ["bob@example.test"], ["spammer@remote.test"]).blocked


def test_a_sender_moves_between_lists_instead_of_being_on_both(alice):
    client = sign_in(Client(), "alice@example.test")
    add(client, "block", "x@remote.test")
    add(client, "allow", "x@remote.test")
    assert list(SenderRule.objects.values_list("kind", "pattern")) == [("allow", "x@remote.test")]


@pytest.mark.parametrize("sender", ["not an address", "a@", "@", "x" * 300, "bad..dots.test"])
def test_what_is_neither_address_nor_domain_is_a_form_error(alice, sender):
    client = sign_in(Client(), "alice@example.test")
    response = add(client, "block", sender)
    assert response.status_code == 200
    assert b'class="errors"' in response.content
    assert not SenderRule.objects.exists()


def test_a_kind_not_offered_is_a_form_error(alice):
    client = sign_in(Client(), "alice@example.test")
    response = add(client, "welcome", "x@remote.test")
    assert response.status_code == 200 and b"Select a valid choice" in response.content


def test_another_mailbox_cannot_see_or_remove_alices_entries(alice, domain):
    directory.add_domain("other.test")
    directory.add_mailbox("eve@other.test", PASSWORD)
    alice_client = sign_in(Client(), "alice@example.test")
    add(alice_client, "block", "secret-enemy@remote.test")
    rule = SenderRule.objects.get()
    eve = sign_in(Client(), "eve@other.test")
    assert "secret-enemy" not in eve.get(reverse("webmail:settings")).content.decode()
    response = eve.post(reverse("webmail:sender_remove", args=[rule.pk]))
    assert response.status_code == 404
    assert SenderRule.objects.filter(pk=rule.pk).exists()
    assert alice_client.post(reverse("webmail:sender_remove", args=[rule.pk])).status_code == 302
    assert not SenderRule.objects.exists()


def test_the_list_forms_need_the_csrf_token(alice):
    client, token = csrf_client("alice@example.test")
    url = reverse("webmail:sender_add")
    assert client.post(url, {"kind": "block", "sender": "a@b.test"}).status_code == 403
    assert client.post(url, {"kind": "block", "sender": "a@b.test",
                             "csrfmiddlewaretoken": token}).status_code == 302


# The trust line ----------------------------------------------------------------------------

def _arrived(settings, results: str, from_: str = "Bob <bob@remote.test>",
             extra: bytes = b"") -> bytes:
    return (b"Return-Path: <bob@remote.test>\r\n"
            + f"Authentication-Results: {settings.MAIL_HOSTNAME};\r\n\t".encode()
            + results.encode() + b"\r\n" + extra
            + b"Received: from mail.remote.test\r\n"
            + f"From: {from_}\r\nTo: alice@example.test\r\nSubject: Hi\r\n\r\nHello\r\n".encode())


@pytest.mark.parametrize(("results", "expected"), [
    ("spf=pass smtp.mailfrom=remote.test;\r\n\tdkim=pass header.d=remote.test header.s=s;"
     "\r\n\tdmarc=pass (p=reject) header.from=remote.test", (True, "remote.test")),
    ("spf=fail smtp.mailfrom=remote.test;\r\n\tdkim=none;\r\n\t"
     "dmarc=fail (p=quarantine) header.from=remote.test", (False, "remote.test")),
    # No DMARC record: a signature of the From domain (or a parent of it) still verifies.
    ("spf=none smtp.mailfrom=remote.test;\r\n\tdkim=pass header.d=remote.test;\r\n\t"
     "dmarc=none header.from=mail.remote.test", (True, "mail.remote.test")),
    ("spf=softfail smtp.mailfrom=remote.test;\r\n\tdkim=pass header.d=other.test;\r\n\t"
     "dmarc=none header.from=remote.test", (False, "remote.test")),
])
def test_the_trust_line_reads_our_authentication_results(settings, results, expected):
    from mailcore.webclient.trust import trust_of

    found = trust_of(_arrived(settings, results))
    assert (found.verified, found.domain) == expected


def test_another_servers_authentication_results_on_top_are_not_believed(settings):
    from mailcore.webclient.trust import trust_of

    forged = (b"Authentication-Results: mx.elsewhere.test; dmarc=pass "
              b"header.from=remote.test\r\nFrom: bob@remote.test\r\n\r\nHi\r\n")
    assert trust_of(forged) is None
    assert trust_of(b"From: bob@remote.test\r\nSubject: sent by us\r\n\r\nHi\r\n") is None


def test_webmail_shows_the_trust_line_on_the_message(alice, settings):
    from mailcore.models import Folder
    from mailcore.store.delivery import deliver

    deliver(_arrived(settings, "spf=fail smtp.mailfrom=remote.test;\r\n\tdkim=none;\r\n\t"
                               "dmarc=fail (p=none) header.from=remote.test"),
            "bob@remote.test", [alice.pk])
    deliver(_arrived(settings, "spf=pass smtp.mailfrom=remote.test;\r\n\t"
                               "dmarc=pass header.from=remote.test"), "bob@remote.test",
            [alice.pk])
    client = sign_in(Client(), "alice@example.test")
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    page = client.get(reverse("webmail:message", args=[inbox.pk, 1])).content.decode()
    assert "Could not verify that this came from remote.test" in page
    page = client.get(reverse("webmail:message", args=[inbox.pk, 2])).content.decode()
    assert "Verified: this message comes from remote.test" in page
