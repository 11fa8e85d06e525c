"""Claims on domain names: nobody blocks a name's real owner, and mail sees only proven ones."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mailcore import claims, clientconfig, directory, dkim, selfservice, tasks
from mailcore.directory import DirectoryError, LoginRefused, Route
from mailcore.models import Alias, Domain, Mailbox
from mailcore.principal import Principal
from mailcore.sending.senders import SenderProblem, sender_problem
from mailcore.webclient import compose
from tests.dns_server import DNSServer
from tests.panel_cast import *  # noqa: F403
from tests.panel_cast import PASSWORD, published_records

pytestmark = pytest.mark.django_db

HOST = "mx.host.test"
MB = 1024 ** 2
NOTICE = "Your pending claim for newco.test ended"


@pytest.fixture(autouse=True)
def _hostname(settings):
    settings.MAIL_HOSTNAME = HOST


def claim(user, name: str = "newco.test") -> Domain:
    return selfservice.add_domain(user, name)


def check_dns_as(client: Client, domain: Domain, settings, records=None):
    """Post the panel's DNS check for domain with its records (or records) published."""
    with DNSServer(records or published_records(domain)) as server:
        settings.DNS_RESOLVER = server.address
        return client.post(reverse("domain_dns", args=[domain.pk]), follow=True)


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# Claiming ----------------------------------------------------------------------------------

def test_a_second_customer_may_claim_a_name_another_has_claimed(as_alice, as_bob, alice_user,
                                                                bob_user) -> None:
    first = as_alice.post(reverse("domain_add"), {"name": "newco.test"}, follow=True)
    second = as_bob.post(reverse("domain_add"), {"name": "NewCo.test"}, follow=True)
    assert first.status_code == second.status_code == 200
    claimed = Domain.objects.filter(name="newco.test")
    assert {d.owner for d in claimed} == {alice_user, bob_user}
    assert all(d.verified_at is None for d in claimed)
    assert len({d.verification_token for d in claimed}) == 2
    assert page_messages(first) == page_messages(second)


def test_the_answer_never_says_another_account_holds_the_name(as_bob, alice_domain,
                                                              alice_user) -> None:
    claim(alice_user, "pending.test")
    held = as_bob.post(reverse("domain_add"), {"name": "alice.test"}, follow=True)
    pending = as_bob.post(reverse("domain_add"), {"name": "pending.test"}, follow=True)
    fresh = as_bob.post(reverse("domain_add"), {"name": "fresh.test"}, follow=True)
    texts = [" ".join(page_messages(r)) for r in (held, pending, fresh)]
    assert texts[0].replace("alice.test", "X") == texts[2].replace("fresh.test", "X")
    assert texts[1].replace("pending.test", "X") == texts[2].replace("fresh.test", "X")
    for text in texts:
        assert "exists" not in text and "another" not in text.lower()
    assert Domain.objects.filter(name="alice.test").count() == 2


def test_a_customer_holds_one_claim_per_name(as_alice, alice_user) -> None:
    claim(alice_user)
    response = as_alice.post(reverse("domain_add"), {"name": "newco.test"})
    assert "already exists" in " ".join(response.context["form"].errors["name"])
    assert Domain.objects.filter(name="newco.test").count() == 1


def test_the_database_keeps_one_verified_row_per_name(alice_user, bob_user) -> None:
    directory.add_domain("newco.test", owner=alice_user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Domain.objects.create(name="newco.test", owner=bob_user, verified_at=timezone.now())
    claim(bob_user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Domain.objects.create(name="newco.test", owner=bob_user)


# Proving ----------------------------------------------------------------------------------

def test_the_first_to_prove_gets_the_name_and_the_other_claim_ends_with_a_notice(
        as_alice, alice_user, bob_user, settings, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    mine, theirs = claim(alice_user), claim(bob_user)
    selfservice.add_mailbox(bob_user, theirs, "ceo", PASSWORD, "", MB)
    selfservice.add_alias(theirs, "sales", ["ceo@newco.test"])
    with django_capture_on_commit_callbacks(execute=True):
        response = check_dns_as(as_alice, mine, settings)
    assert "Ownership of newco.test is proven" in " ".join(page_messages(response))
    assert list(Domain.objects.filter(name="newco.test")) == [mine]
    mine.refresh_from_db()
    assert mine.verified_at is not None
    assert not Mailbox.objects.filter(local_part="ceo").exists()
    assert not Alias.objects.filter(local_part="sales").exists()
    [notice] = mailoutbox
    assert notice.to == ["bob@customers.test"]
    assert notice.subject == NOTICE
    assert "another account proved ownership" in notice.body
    assert "alice" not in notice.body


def test_a_claim_proven_while_another_account_holds_the_name_is_refused_neutrally(
        as_bob, alice_domain, alice_mailbox, bob_user, settings, mailoutbox) -> None:
    theirs = claim(bob_user, "alice.test")
    response = check_dns_as(as_bob, theirs, settings)
    text = " ".join(page_messages(response))
    assert "We could not verify alice.test for your account. Please contact support." in text
    assert "alice@" not in text and "another" not in text.lower()
    theirs.refresh_from_db()
    alice_domain.refresh_from_db()
    assert theirs.verified_at is None
    assert alice_domain.verified_at is not None
    assert directory.resolve("hello@alice.test").mailbox_ids == {alice_mailbox.pk}
    assert mailoutbox == []


def test_only_the_claims_own_token_proves_it(as_bob, alice_user, bob_user, settings) -> None:
    mine, theirs = claim(alice_user), claim(bob_user)
    check_dns_as(as_bob, theirs, settings, records=published_records(mine))
    theirs.refresh_from_db()
    assert theirs.verified_at is None


def test_an_operators_domain_add_ends_the_pending_claims(alice_user, bob_user, mailoutbox,
                                                         django_capture_on_commit_callbacks
                                                         ) -> None:
    claim(alice_user)
    claim(bob_user)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("domain", "add", "newco.test", stdout=io.StringIO())
    [domain] = Domain.objects.filter(name="newco.test")
    assert domain.owner is None and domain.verified_at is not None
    assert sorted(m.to[0] for m in mailoutbox) == ["alice@customers.test", "bob@customers.test"]
    assert all("added by the operator" in m.body for m in mailoutbox)


def test_staff_verifying_by_hand_end_the_other_claims(as_carol, alice_user, bob_user, mailoutbox,
                                                      django_capture_on_commit_callbacks
                                                      ) -> None:
    mine = claim(alice_user)
    claim(bob_user)
    with django_capture_on_commit_callbacks(execute=True):
        as_carol.post(reverse("domain_verify", args=[mine.pk]))
    assert list(Domain.objects.filter(name="newco.test")) == [mine]
    assert [m.to for m in mailoutbox] == [["bob@customers.test"]]


def test_the_notice_reaches_a_hosted_owner_through_our_own_delivery(
        alice_user, bob_user, alice_domain, alice_mailbox, settings,
        django_capture_on_commit_callbacks) -> None:
    settings.EMAIL_BACKEND = "mailcore.sending.system.EmailBackend"
    bob_user.email = "hello@alice.test"
    bob_user.save()
    theirs = claim(bob_user)
    with django_capture_on_commit_callbacks(execute=True):
        directory.add_domain("newco.test")
    assert not Domain.objects.filter(pk=theirs.pk).exists()
    from tests.mailboxes import inbox, raw_of

    [message] = inbox(alice_mailbox)
    assert NOTICE.encode() in raw_of(message)


# Expiry -----------------------------------------------------------------------------------

def test_claims_older_than_domain_claim_days_expire_with_a_notice(
        alice_user, bob_user, alice_domain, settings, mailoutbox,
        django_capture_on_commit_callbacks) -> None:
    settings.DOMAIN_CLAIM_DAYS = 3
    old, fresh = claim(alice_user), claim(bob_user, "fresh.test")
    selfservice.add_mailbox(alice_user, old, "ceo", PASSWORD, "", MB)
    long_ago = timezone.now() - timedelta(days=3, minutes=1)
    Domain.objects.filter(pk__in=[old.pk, alice_domain.pk]).update(created_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_domain_claims() == 1
    assert not Domain.objects.filter(pk=old.pk).exists()
    assert Domain.objects.filter(pk__in=[fresh.pk, alice_domain.pk]).count() == 2
    [notice] = mailoutbox
    assert notice.to == ["alice@customers.test"]
    assert "ownership was not proven within 3 days" in notice.body


def test_the_expiry_job_is_scheduled(settings) -> None:
    tasks_scheduled = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "mailcore.tasks.expire_domain_claims" in tasks_scheduled


def test_the_panel_shows_when_a_pending_claim_ends(as_alice, alice_user, settings) -> None:
    settings.DOMAIN_CLAIM_DAYS = 7
    domain = claim(alice_user)
    ends = (domain.created_at + timedelta(days=7)).strftime("%-d %B %Y")
    assert ends in as_alice.get(reverse("domain_dns", args=[domain.pk])).content.decode()
    assert ends in as_alice.get(reverse("domain_detail", args=[domain.pk])).content.decode()
    home = as_alice.get("/").content.decode()
    assert "claim ends " + (domain.created_at + timedelta(days=7)).strftime("%-d %b %Y") in home


def test_the_mailbox_page_says_an_unverified_domains_mailbox_cannot_sign_in(as_alice,
                                                                           alice_user) -> None:
    domain = claim(alice_user)
    mailbox = selfservice.add_mailbox(alice_user, domain, "ceo", PASSWORD, "", MB)
    page = as_alice.get(reverse("mailbox_detail", args=[mailbox.pk])).content.decode()
    assert "will not arrive" in page and "cannot sign in or send" in page


# Mail sees the verified domain only --------------------------------------------------------

@pytest.fixture
def squatted(alice_user, bob_user, alice_domain, alice_mailbox) -> Mailbox:
    """Bob's pending claim on alice.test, with his own hello@ and a catch-all."""
    theirs = claim(bob_user, "alice.test")
    mailbox = selfservice.add_mailbox(bob_user, theirs, "hello", "bobs-own-password", "", MB)
    selfservice.add_mailbox(bob_user, theirs, "ceo", "bobs-own-password", "", MB)
    selfservice.set_catch_all(theirs, ["bob@elsewhere.test"])
    return mailbox


def test_routing_and_logins_never_reach_a_pending_claim(squatted, alice_mailbox) -> None:
    assert directory.resolve("hello@alice.test").mailbox_ids == {alice_mailbox.pk}
    assert directory.resolve("ceo@alice.test").route is Route.UNKNOWN_USER
    assert directory.resolve("nobody@alice.test").route is Route.UNKNOWN_USER
    with pytest.raises(LoginRefused):
        directory.log_in("hello@alice.test", "bobs-own-password", "127.0.0.1")
    with pytest.raises(LoginRefused):
        directory.log_in("ceo@alice.test", "bobs-own-password", "127.0.0.1")
    principal = directory.log_in("hello@alice.test", PASSWORD, "127.0.0.1")
    assert principal.mailbox_id == alice_mailbox.pk


def test_operator_tools_and_autoconfig_find_the_verified_domain(squatted, alice_domain,
                                                                capsys) -> None:
    assert directory.get_domain("alice.test") == alice_domain
    assert directory.get_mailbox("hello@alice.test").domain == alice_domain
    assert clientconfig.hosted_domain_for("hello@alice.test") == alice_domain
    call_command("domain", "dkim", "alice.test")
    assert dkim.dns_record(alice_domain)[1][-40:] in capsys.readouterr().out


def test_a_pending_claims_mailbox_cannot_send_and_its_domain_is_not_signed(alice_user) -> None:
    domain = claim(alice_user)
    principal = Principal.of(selfservice.add_mailbox(alice_user, domain, "ceo", PASSWORD, "", MB))
    assert sender_problem(principal, "ceo@newco.test") is SenderProblem.DOMAIN_NOT_VERIFIED
    with pytest.raises(dkim.DomainNotVerified):
        dkim.sign(b"From: ceo@newco.test\r\n\r\nhi\r\n", domain)
    draft = compose.Draft(from_address="ceo@newco.test", to="x@remote.test", body="hi")
    with pytest.raises(compose.ComposeError, match="domain not verified"):
        compose.send(principal, draft, peer_ip="127.0.0.1", secure=True)


def test_a_pending_claims_mailbox_cannot_sign_in_to_webmail(alice_user) -> None:
    domain = claim(alice_user)
    selfservice.add_mailbox(alice_user, domain, "ceo", PASSWORD, "", MB)
    response = Client().post(reverse("webmail:login"), {"address": "ceo@newco.test",
                                                        "password": PASSWORD})
    assert response.status_code != 302


def test_claims_prove_refuses_a_claim_that_has_ended(alice_user, bob_user) -> None:
    mine, theirs = claim(alice_user), claim(bob_user)
    claims.prove(mine)
    with pytest.raises(claims.ClaimRefused):
        claims.prove(theirs)


def test_a_pending_claims_name_is_not_found_by_the_operators_tools(alice_user) -> None:
    claim(alice_user)
    with pytest.raises(DirectoryError, match="no such domain"):
        directory.get_domain("newco.test")


def test_a_pending_claims_mailbox_cannot_log_in_over_imap_or_pop3(server, alice_user) -> None:
    from mailcore.pop3 import replies as pop3_replies
    from tests import imap_client
    from tests.servers import RawClient

    selfservice.add_mailbox(alice_user, claim(alice_user), "ceo", PASSWORD, "", MB)
    imap = imap_client.connect(server)
    assert imap.run(f'LOGIN ceo@newco.test "{PASSWORD}"')[1] == (
        "NO [AUTHENTICATIONFAILED] Authentication failed")
    pop3 = RawClient(server.port("pop3"))
    assert pop3.line().startswith("+OK ")
    pop3.transact("USER ceo@newco.test", "+OK")
    pop3.transact(f"PASS {PASSWORD}", pop3_replies.AUTH_FAILED)
    pop3.close()
