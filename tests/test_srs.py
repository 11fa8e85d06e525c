"""SRS: forwarded mail leaves with a rewritten envelope sender; bounces find their way back."""

from __future__ import annotations

import time

import pytest

from mailcore import directory, srs
from mailcore.directory import Route
from mailcore.models import OutboundMessage, OutboundRecipient
from mailcore.queue.bounces import send_dsn
from tests.mailboxes import inbox, raw_of
from tests.servers import RawClient, ServerThread

BODY = b"From: bob@remote.test\r\nTo: fwd@example.test\r\nSubject: hi\r\n\r\nHello\r\n"


def test_a_rewritten_sender_reverses_to_the_original():
    rewritten = srs.forward("Bob.Smith@remote.test", "example.test")
    assert rewritten.startswith("SRS0=")
    assert rewritten.endswith("=remote.test=Bob.Smith@example.test")
    assert srs.reverse(rewritten) == "Bob.Smith@remote.test"
    assert srs.reverse(rewritten.upper()) is not None  # hashes compare without case
    assert srs.forward("", "example.test") == ""  # a bounce stays a bounce


def test_an_srs0_forwarded_again_becomes_srs1_bouncing_to_the_first_hop():
    first_hop = "SRS0=AbCd=XY=remote.test=bob@first.test"
    rewritten = srs.forward(first_hop, "example.test")
    assert rewritten.startswith("SRS1=") and rewritten.endswith("@example.test")
    assert srs.reverse(rewritten) == first_hop


def test_forged_altered_short_and_expired_addresses_are_refused(settings):
    good = srs.forward("bob@remote.test", "example.test")
    hash_part = good.split("=")[1]
    assert srs.reverse(good.replace("bob@", "eve@")) is None  # altered
    assert srs.reverse(good.replace(hash_part, "AAAAAA")) is None  # forged hash
    assert srs.reverse(good.replace(hash_part, hash_part[:1])) is None  # guessable hash
    assert srs.reverse("SRS0=x@example.test") is None and srs.reverse("bob@x.test") is None
    settings.SRS_SECRET = "another secret"
    assert srs.reverse(good) is None
    settings.SRS_PREVIOUS_SECRETS = [settings.SRS_SECRET]
    settings.SRS_SECRET = "a third one"
    assert srs.reverse(good) is None
    # Expired: written SRS_VALIDITY_DAYS + 1 days ago.
    scheme = srs._scheme()
    scheme._time_fn = lambda: time.time() - (settings.SRS_VALIDITY_DAYS + 1) * 86400
    old = scheme.forward("bob@remote.test", "example.test")
    assert srs.reverse(old) is None


# Over SMTP -------------------------------------------------------------------------------

@pytest.fixture
def smtp(alice):
    directory.add_alias("fwd@example.test", ["carol@remote.test", "alice@example.test"])
    thread = ServerThread().start()
    client = RawClient(thread.port("smtp"))
    client.smtp_reply()
    client.transact("EHLO mx.remote.test", "250 ", smtp=True)
    yield client
    client.close()
    thread.stop()


def test_mail_forwarded_outside_leaves_with_an_srs_sender_at_the_forwarding_domain(
        smtp, alice):
    assert smtp.send_mail(BODY, "bob@remote.test", ("fwd@example.test",)).startswith("250")
    outbound = OutboundMessage.objects.get()
    assert outbound.mail_from.startswith("SRS0=") and outbound.mail_from.endswith(
        "@example.test")
    assert srs.reverse(outbound.mail_from) == "bob@remote.test"
    assert [r.address for r in outbound.recipients.all()] == ["carol@remote.test"]
    (local,) = inbox(alice)  # the local copy keeps the real sender in Return-Path
    assert raw_of(local).startswith(b"Return-Path: <bob@remote.test>\r\n")


def test_a_bounce_to_the_srs_address_goes_back_to_the_original_sender(smtp, alice):
    smtp.send_mail(BODY, "bob@remote.test", ("fwd@example.test",))
    address = OutboundMessage.objects.get().mail_from
    bounce = b"From: MAILER-DAEMON@remote.test\r\nSubject: failed\r\n\r\nno such user\r\n"
    assert smtp.send_mail(bounce, "", (address,)).startswith("250")
    returned = OutboundMessage.objects.exclude(mail_from__startswith="SRS0=").get()
    assert returned.mail_from == ""  # still a bounce, and nobody answers it
    assert [r.address for r in returned.recipients.all()] == ["bob@remote.test"]


def test_forged_srs_addresses_and_non_bounces_to_srs_addresses_are_refused(smtp, alice):
    smtp.transact("MAIL FROM:<>", "250 ", smtp=True)
    assert smtp.transact("RCPT TO:<SRS0=AAAAAA=XY=remote.test=bob@example.test>", "550 ",
                         smtp=True).startswith("550 5.1.1")
    smtp.transact("RSET", "250 ", smtp=True)
    good = srs.forward("bob@remote.test", "example.test")
    smtp.transact("MAIL FROM:<eve@evil.test>", "250 ", smtp=True)
    assert smtp.transact(f"RCPT TO:<{good}>", "550 ", smtp=True) == (
        "550 5.7.1 SRS addresses accept bounces only (null sender)")


def test_a_forged_srs_address_is_not_swallowed_by_a_catch_all(alice):
    directory.add_alias("@example.test", ["alice@example.test"])
    assert directory.resolve("SRS0=AAAAAA=XY=remote.test=bob@example.test").route is (
        Route.UNKNOWN_USER)
    assert directory.resolve("anyone@example.test").mailbox_ids == {alice.pk}


def test_a_bounce_of_mail_we_forwarded_for_a_local_sender_lands_in_their_inbox(alice):
    address = srs.forward("alice@example.test", "example.test")
    send_dsn(b"From: MAILER-DAEMON@mx.test\r\nSubject: failed\r\n\r\nx\r\n", address)
    assert len(inbox(alice)) == 1
    assert not OutboundRecipient.objects.exists()


def test_our_own_bounce_of_a_forward_returns_to_the_original_sender(alice):
    address = srs.forward("bob@remote.test", "example.test")
    send_dsn(b"From: MAILER-DAEMON@mx.test\r\nSubject: failed\r\n\r\nx\r\n", address)
    assert [r.address for r in OutboundRecipient.objects.all()] == ["bob@remote.test"]
