"""What we send on our own carries our signature: DSNs and vacation replies are DKIM-signed,
and forwarded mail is ARC-sealed, so a second installation downstream still trusts it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import dkim
import pytest
from django.utils import timezone

from mailcore import directory, srs
from mailcore import dkim as our_dkim
from mailcore.inbound.authentication import authenticate
from mailcore.inbound.verdict import Incoming
from mailcore.models import Domain, OutboundMessage, OutboundRecipient
from mailcore.principal import Principal
from mailcore.queue.bounces import notify_senders
from mailcore.sending import vacation
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from tests.dns_server import DNSServer
from tests.servers import RawClient, ServerThread
from tests.test_inbound_auth import RECORDS, message, signed


def _dnsfunc(domain: Domain):
    """A DKIM key lookup that knows only this domain's published record."""
    name, value = our_dkim.dns_record(domain)

    def get_txt(asked: bytes, timeout: float = 5) -> bytes:
        return value.encode() if asked.decode().rstrip(".") == name else b""
    return get_txt


def _outbound_raw(outbound: OutboundMessage) -> bytes:
    return blob_store().get(outbound.blob_id)


@pytest.mark.django_db(transaction=True)
def test_a_bounce_of_forwarded_mail_is_signed_by_the_forwarding_domain(domain, settings):
    settings.MAIL_HOSTNAME = "mx.hosting.test"
    forwarded = deliver(b"From: bob@remote.test\r\nSubject: hi\r\n\r\nx\r\n",
                        srs.forward("bob@remote.test", "example.test"), [],
                        ["carol@gone.test"])
    OutboundRecipient.objects.filter(message_id=forwarded.outbound_id).update(
        state=OutboundRecipient.State.FAILED, status="5.1.1",
        last_response="550 5.1.1 no such user")
    notify_senders({forwarded.outbound_id})
    dsn = OutboundMessage.objects.exclude(pk=forwarded.outbound_id).get()
    assert dsn.mail_from == "" and [r.address for r in dsn.recipients.all()] == [
        "bob@remote.test"]
    raw = _outbound_raw(dsn)
    assert b"From: Mail Delivery System <MAILER-DAEMON@example.test>\r\n" in raw
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(raw, dnsfunc=_dnsfunc(domain))


@pytest.mark.django_db(transaction=True)
def test_a_bounce_for_a_sender_we_hold_no_key_for_goes_unsigned_from_our_host(
        domain, settings):
    settings.MAIL_HOSTNAME = "mx.hosting.test"
    Domain.objects.filter(pk=domain.pk).update(dkim_private_key="")
    forwarded = deliver(b"Subject: hi\r\n\r\nx\r\n", srs.forward("bob@remote.test", "example.test"),
                        [], ["carol@gone.test"])
    OutboundRecipient.objects.update(state=OutboundRecipient.State.FAILED)
    notify_senders({forwarded.outbound_id})
    raw = _outbound_raw(OutboundMessage.objects.exclude(pk=forwarded.outbound_id).get())
    assert b"MAILER-DAEMON@mx.hosting.test" in raw and b"DKIM-Signature" not in raw


@pytest.mark.django_db(transaction=True)
def test_vacation_replies_are_dkim_signed_by_the_mailbox_domain(alice, domain):
    away = vacation.Vacation(enabled=True, body="Away.", start=None, end=None,
                             interval=timedelta(days=7))

    class Log:
        def replied_since(self, sender, since):
            return False

        def record(self, sender, when):
            pass

    original = (b"From: friend@remote.test\r\nTo: alice@example.test\r\n"
                b"Subject: lunch\r\nMessage-ID: <1@remote.test>\r\n\r\nHi\r\n")
    decision = vacation.respond(away, Principal.of(alice), original, "friend@remote.test",
                                Log(), timezone.now())
    assert decision.reply
    raw = _outbound_raw(OutboundMessage.objects.get())
    assert b"DKIM-Signature: " in raw and b"d=example.test" in raw
    assert dkim.verify(raw[raw.index(b"DKIM-Signature"):], dnsfunc=_dnsfunc(domain))


# ARC through a forward, checked by a second installation ------------------------------------

@pytest.fixture
def forwarding(settings, alice, domain):
    """Our server with the checks on, and fwd@example.test forwarding to carol@remote.test."""
    records = dict(RECORDS)
    name, value = our_dkim.dns_record(Domain.objects.get(pk=domain.pk))
    records[(name, "TXT")] = [" ".join(f'"{value[i:i + 200]}"'
                                       for i in range(0, len(value), 200))]
    # The hosting's domains list its servers in SPF (the panel's DNS page says so).
    records[("example.test", "TXT")] = ['"v=spf1 ip4:127.0.0.1 -all"']
    directory.add_alias("fwd@example.test", ["carol@remote.test"])
    with DNSServer(records) as dns:
        settings.INBOUND_AUTH = True
        settings.DNS_RESOLVER = dns.address
        settings.MAIL_HOSTNAME = "mx.example.test"
        thread = ServerThread().start()
        client = RawClient(thread.port("smtp"))
        client.smtp_reply()
        client.transact("EHLO mx.remote.test", "250 ", smtp=True)
        yield client, dns
        client.close()
        thread.stop()


def test_forwarded_mail_is_arc_sealed_and_passes_spf_and_arc_at_the_next_hop(forwarding):
    client, dns = forwarding
    sent = signed(message())
    assert client.send_mail(sent, "bob@remote.test", ("fwd@example.test",)).startswith("250")
    outbound = OutboundMessage.objects.get()
    raw = _outbound_raw(outbound)
    assert raw.startswith(b"ARC-Seal: i=1; ")
    assert b"ARC-Authentication-Results: i=1; mx.example.test;" in raw
    assert b"d=example.test" in raw.split(b"ARC-Authentication-Results")[0]
    # The second installation: what it receives from us (127.0.0.1, our HELO), as it is.
    second = Incoming(raw, "127.0.0.1", "mx.example.test", outbound.mail_from,
                      ("carol@remote.test",), frozenset())
    verdict = asyncio.run(authenticate(second))
    assert verdict.result("spf") == "pass"  # the SRS sender is ours: SPF holds
    assert verdict.result("arc") == "pass"
    assert verdict.result("dkim") == "pass" and verdict.result("dmarc") == "pass"


def test_a_forward_broken_in_transit_fails_the_arc_chain(forwarding):
    client, _ = forwarding
    assert client.send_mail(signed(message()), "bob@remote.test",
                            ("fwd@example.test",)).startswith("250")
    outbound = OutboundMessage.objects.get()
    raw = _outbound_raw(outbound).replace(b"Subject: Hello", b"Subject: Changed")
    second = Incoming(raw, "127.0.0.1", "mx.example.test", outbound.mail_from,
                      ("carol@remote.test",), frozenset())
    assert asyncio.run(authenticate(second)).result("arc") == "fail"

