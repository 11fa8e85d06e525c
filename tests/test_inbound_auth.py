"""Sender authentication on port 25: SPF, DKIM, ARC and DMARC against a loopback DNS server.

The DNS server publishes records for test sender domains; messages really signed with
remote.test's key pass, forged, altered and wrongly aligned ones fail as the RFCs say.
"""

from __future__ import annotations

import asyncio
import random

import dkim
import pytest

from mailcore import dkim as our_dkim
from mailcore.inbound import authresults, dmarc, lookups
from mailcore.inbound.signatures import verify_dkim
from mailcore.inbound.spf import SPFResult, check, check_helo
from mailcore.models import Domain, Folder, Message
from tests.dns_server import DNSServer
from tests.mailboxes import inbox, raw_of
from tests.servers import RawClient, ServerThread

REMOTE_KEY = our_dkim.generate_private_key()
SIGNER_KEY = our_dkim.generate_private_key()
FORWARDER_KEY = our_dkim.generate_private_key()


def _key_record(private_pem: str) -> str:
    """Return a DKIM key record as DNS TXT text, split in strings of at most 255 octets."""
    text = f"v=DKIM1; k=rsa; p={our_dkim.public_key_b64(private_pem)}"
    return " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))


RECORDS = {
    ("remote.test", "TXT"): ['"v=spf1 ip4:127.0.0.1 -all"'],
    ("remote.test", "MX"): ["10 mx.remote.test."],
    ("mx.remote.test", "A"): ["127.0.0.1"],
    ("mx.remote.test", "TXT"): ['"v=spf1 a -all"'],
    ("sel._domainkey.remote.test", "TXT"): [_key_record(REMOTE_KEY)],
    ("_dmarc.remote.test", "TXT"): ['"v=DMARC1; p=reject; rua=mailto:d@remote.test"'],
    ("news.remote.test", "TXT"): ['"v=spf1 -all"'],
    ("strict.test", "TXT"): ['"v=spf1 -all"'],
    ("_dmarc.strict.test", "TXT"): ['"v=DMARC1; p=reject; adkim=s; aspf=s"'],
    ("mail.strict.test", "TXT"): ['"v=spf1 ip4:127.0.0.1 -all"'],
    ("quarantine.test", "TXT"): ['"v=spf1 -all"'],
    ("_dmarc.quarantine.test", "TXT"): ['"v=DMARC1; p=quarantine"'],
    ("relaxed.test", "TXT"): ['"v=spf1 ?all"'],
    ("_dmarc.relaxed.test", "TXT"): ['"v=DMARC1; p=none"'],
    ("elsewhere.test", "TXT"): ['"v=spf1 ip4:192.0.2.1 -all"'],
    ("soft.test", "TXT"): ['"v=spf1 include:elsewhere.test ~all"'],
    ("signer.test", "TXT"): ['"v=spf1 -all"'],
    ("sel._domainkey.signer.test", "TXT"): [_key_record(SIGNER_KEY)],
    ("forwarder.test", "TXT"): ['"v=spf1 ip4:127.0.0.1 -all"'],
    ("arc._domainkey.forwarder.test", "TXT"): [_key_record(FORWARDER_KEY)],
    ("broken.test", "TXT"): ['"v=spf1 include:nowhere.test -all"'],
}


def message(from_addr: str = "Bob <bob@remote.test>", subject: str = "Hello",
            body: bytes = b"Hi Alice,\r\nsee you soon.\r\n", extra: bytes = b"") -> bytes:
    return (f"From: {from_addr}\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{random.random()}@remote.test>\r\n"
            "Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n").encode() + extra + b"\r\n" + body


def signed(raw: bytes, domain: str = "remote.test", key: str = REMOTE_KEY) -> bytes:
    signature = dkim.sign(raw, b"sel", domain.encode(), key.encode(),
                          include_headers=[b"from", b"to", b"subject", b"message-id"],
                          canonicalize=(b"relaxed", b"relaxed"))
    return signature + raw


@pytest.fixture(scope="module")
def dns_server():
    with DNSServer(RECORDS) as server:
        yield server


@pytest.fixture
def checks(settings, dns_server):
    settings.INBOUND_AUTH = True
    settings.DNS_RESOLVER = dns_server.address
    settings.MAIL_HOSTNAME = "mx.example.test"
    return settings


@pytest.fixture
def smtp(checks, alice):
    """A raw SMTP session (after EHLO mx.remote.test) with the checks on."""
    thread = ServerThread().start()
    clients: list[RawClient] = []

    def open_session(helo: str = "mx.remote.test") -> RawClient:
        client = RawClient(thread.port("smtp"))
        clients.append(client)
        client.smtp_reply()
        client.transact(f"EHLO {helo}", "250 ", smtp=True)
        return client

    yield open_session
    for client in clients:
        client.close()
    thread.stop()


def authentication_results(raw: bytes) -> str:
    """Return our Authentication-Results field, unfolded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = head.replace("\r\n\t", " ").split("\r\n")
    ours = [f for f in fields if f.startswith("Authentication-Results: mx.example.test")]
    assert len(ours) == 1, fields
    return ours[0]


def junk(mailbox) -> list[Message]:
    return list(Message.objects.filter(folder__mailbox=mailbox,
                                       folder__special_use=Folder.SpecialUse.JUNK))


# Over SMTP: what a recipient gets ----------------------------------------------------------

def test_mail_really_signed_by_the_sender_passes_spf_dkim_and_dmarc(smtp, alice):
    raw = signed(message())
    reply = smtp().send_mail(raw, "bob@remote.test", ("alice@example.test",))
    assert reply.startswith("250 ")
    (stored,) = inbox(alice)
    results = authentication_results(raw_of(stored))
    assert "spf=pass smtp.mailfrom=remote.test" in results
    assert "spf=pass smtp.helo=mx.remote.test" in results
    assert "dkim=pass header.d=remote.test header.s=sel header.b=" in results
    assert "dmarc=pass (p=reject) header.from=remote.test" in results
    assert "arc=none" in results
    assert raw_of(stored).endswith(raw)  # the message itself is untouched


def test_a_forged_sender_with_p_reject_is_refused_naming_the_policy(smtp, alice):
    # The forgery: MAIL FROM and From claim remote.test from a host it does not list.
    reply = smtp().send_mail(message(), "bob@elsewhere.test", ("alice@example.test",))
    assert reply.startswith("550 5.7.1 ")
    assert "DMARC policy of remote.test (p=reject)" in reply
    assert Message.objects.count() == 0


def test_an_altered_message_fails_dkim_and_with_no_aligned_spf_is_refused(smtp, alice):
    raw = signed(message()).replace(b"see you soon", b"send money")
    reply = smtp().send_mail(raw, "bounce@elsewhere.test", ("alice@example.test",))
    assert reply.startswith("550 5.7.1 ")
    assert Message.objects.count() == 0


def test_an_altered_message_with_aligned_spf_passes_dmarc_and_records_the_dkim_failure(
        smtp, alice):
    raw = signed(message()).replace(b"see you soon", b"send money")
    assert smtp().send_mail(raw, "bob@remote.test", ("alice@example.test",)).startswith("250")
    results = authentication_results(raw_of(inbox(alice)[0]))
    assert "dkim=fail (body hash did not verify) header.d=remote.test" in results
    assert "dmarc=pass" in results


def test_a_valid_signature_of_another_domain_does_not_align(smtp, alice):
    raw = signed(message(), "signer.test", SIGNER_KEY)
    reply = smtp().send_mail(raw, "x@elsewhere.test", ("alice@example.test",))
    assert reply.startswith("550 5.7.1 ")


def test_relaxed_alignment_takes_a_subdomain_strict_alignment_does_not(smtp, alice):
    client = smtp()
    # From news.remote.test, signed by remote.test: relaxed alignment (the default) holds,
    # and news.remote.test has no record of its own, so remote.test's applies.
    raw = signed(message("news@news.remote.test"))
    assert client.send_mail(raw, "x@elsewhere.test", ("alice@example.test",)).startswith("250")
    assert "dmarc=pass" in authentication_results(raw_of(inbox(alice)[0]))
    # strict.test asks for strict SPF alignment: mail.strict.test's SPF pass does not count.
    reply = client.send_mail(message("a@strict.test"), "a@mail.strict.test",
                             ("alice@example.test",))
    assert reply.startswith("550 5.7.1 ")


def test_p_quarantine_files_the_failing_message_in_junk(smtp, alice):
    reply = smtp().send_mail(message("q@quarantine.test"), "q@quarantine.test",
                             ("alice@example.test",))
    assert reply.startswith("250 ")
    assert inbox(alice) == []
    (stored,) = junk(alice)
    results = authentication_results(raw_of(stored))
    assert "spf=fail smtp.mailfrom=quarantine.test" in results
    assert "dmarc=fail (p=quarantine) header.from=quarantine.test" in results


def test_a_domain_that_quarantines_instead_of_rejecting_gets_the_message_in_junk(
        smtp, alice, domain):
    Domain.objects.filter(pk=domain.pk).update(dmarc_reject=Domain.DmarcReject.QUARANTINE)
    reply = smtp().send_mail(message(), "bob@elsewhere.test", ("alice@example.test",))
    assert reply.startswith("250 ")
    (stored,) = junk(alice)
    assert "dmarc=fail (p=reject)" in authentication_results(raw_of(stored))


def test_p_none_and_no_record_deliver_with_the_results_recorded(smtp, alice):
    client = smtp()
    assert client.send_mail(message("r@relaxed.test"), "r@soft.test",
                            ("alice@example.test",)).startswith("250")
    assert client.send_mail(message("x@unknown.test"), "x@unknown.test",
                            ("alice@example.test",)).startswith("250")
    first, second = (authentication_results(raw_of(m)) for m in inbox(alice))
    assert "spf=softfail smtp.mailfrom=soft.test" in first
    assert "dkim=none" in first and "dmarc=fail (p=none)" in first
    assert "spf=none smtp.mailfrom=unknown.test" in second and "dmarc=none" in second


def test_forged_authentication_results_in_our_name_are_removed(smtp, alice):
    raw = message(extra=b"Authentication-Results: mx.example.test; dmarc=pass\r\n"
                        b"Authentication-Results: other.test; spf=pass\r\n"
                        b"authentication-results:  MX.EXAMPLE.TEST (forged)\r\n"
                        b"\t; dkim=pass\r\n")
    raw = signed(raw)
    assert smtp().send_mail(raw, "bob@remote.test", ("alice@example.test",)).startswith("250")
    stored = raw_of(inbox(alice)[0])
    assert b"Authentication-Results: other.test; spf=pass\r\n" in stored
    assert b"mx.example.test; dmarc=pass" not in stored and b"(forged)" not in stored
    assert "dmarc=pass" in authentication_results(stored)  # ours, the one left


def test_a_bounce_is_checked_by_its_helo(smtp, alice):
    raw = message("MAILER-DAEMON@remote.test")
    assert smtp().send_mail(raw, "", ("alice@example.test",)).startswith("250")
    results = authentication_results(raw_of(inbox(alice)[0]))
    assert "smtp.mailfrom" not in results
    assert "spf=pass smtp.helo=mx.remote.test" in results


def test_dns_failure_defers_with_451_or_delivers_with_temperror(checks, alice):
    checks.DNS_RESOLVER = "127.0.0.1:1"  # nothing answers
    checks.INBOUND_DNS_TIMEOUT = 0.3
    checks.INBOUND_DNS_FAILURE = "defer"  # production's default (development accepts)
    thread = ServerThread().start()
    try:
        client = RawClient(thread.port("smtp"))
        client.smtp_reply()
        client.transact("EHLO mx.remote.test", "250 ", smtp=True)
        reply = client.send_mail(signed(message()), "bob@remote.test", ("alice@example.test",))
        assert reply.startswith("451 4.4.3 ") and "DMARC policy of remote.test" in reply
        assert Message.objects.count() == 0
        checks.INBOUND_DNS_FAILURE = "accept"
        reply = client.send_mail(signed(message()), "bob@remote.test", ("alice@example.test",))
        assert reply.startswith("250 ")
        results = authentication_results(raw_of(inbox(alice)[0]))
        assert "spf=temperror smtp.mailfrom=remote.test" in results
        assert "dkim=temperror (key lookup failed) header.d=remote.test" in results
        assert "dmarc=temperror" in results
        client.close()
    finally:
        thread.stop()


# ARC (RFC 8617) --------------------------------------------------------------------------

def arc_sealed(raw: bytes, results: str = "arc=none") -> bytes:
    """Return raw as forwarder.test forwards it: its own Authentication-Results, and an
    ARC set sealed with its key."""
    raw = f"Authentication-Results: forwarder.test; {results}\r\n".encode() + raw
    headers = dkim.arc_sign(raw, b"arc", b"forwarder.test", FORWARDER_KEY.encode(),
                            b"forwarder.test", include_headers=[b"from", b"to", b"subject"])
    return b"".join(headers) + raw


def test_an_intact_arc_chain_passes_and_a_broken_one_fails(smtp, alice):
    client = smtp()
    raw = arc_sealed(signed(message()), "dkim=pass header.d=remote.test; arc=none")
    assert client.send_mail(raw, "bob@remote.test", ("alice@example.test",)).startswith("250")
    tampered = arc_sealed(signed(message())).replace(b"Subject: Hello", b"Subject: Hellx")
    assert client.send_mail(tampered, "bob@remote.test",
                            ("alice@example.test",)).startswith("250")
    first, second = (authentication_results(raw_of(m)) for m in inbox(alice))
    assert "arc=pass (sealed by forwarder.test)" in first
    assert "arc=fail (sealed by forwarder.test)" in second


def test_a_trusted_forwarders_arc_seal_overrides_a_dmarc_failure(smtp, checks, alice):
    # A list that changed the body (DKIM breaks) and kept the sender (SPF fails here).
    raw = arc_sealed(signed(message()).replace(b"see you soon", b"[list] see you soon"),
                     "dkim=pass header.d=remote.test; arc=none")
    client = smtp()
    assert client.send_mail(raw, "bob@elsewhere.test", ("alice@example.test",)).startswith(
        "550 5.7.1")
    checks.ARC_TRUSTED_SEALERS = ["forwarder.test"]
    assert client.send_mail(raw, "bob@elsewhere.test", ("alice@example.test",)).startswith(
        "250 ")
    results = authentication_results(raw_of(inbox(alice)[0]))
    assert "dmarc=fail (p=reject) (policy overridden: ARC sealed by forwarder.test)" in results


# The parts, one by one --------------------------------------------------------------------

def run(coroutine):
    return asyncio.run(coroutine)


def test_spf_results_for_pass_fail_softfail_none_and_permerror(dns_server):
    resolver = lookups.Resolver(dns_server.address, 2)
    assert run(check("127.0.0.1", "a@remote.test", "x", resolver)).result == "pass"
    assert run(check("127.0.0.2", "a@remote.test", "x", resolver)).result == "fail"
    assert run(check("127.0.0.1", "a@soft.test", "x", resolver)).result == "softfail"
    assert run(check("127.0.0.1", "a@unknown.test", "x", resolver)).result == "none"
    # include: of a domain without SPF is a permerror (RFC 7208 section 5.2).
    assert run(check("127.0.0.1", "a@broken.test", "x", resolver)).result == "permerror"
    assert run(check("::1", "a@remote.test", "x", resolver)).result == "fail"
    assert run(check_helo("127.0.0.1", "[127.0.0.1]", resolver)) == SPFResult(
        "none", "[127.0.0.1]", "HELO is no domain name")


def test_spf_with_dns_down_is_temperror_not_a_crash():
    resolver = lookups.Resolver("127.0.0.1:1", 0.2)
    assert run(check("127.0.0.1", "a@remote.test", "x", resolver)).result == "temperror"


def test_dns_answers_are_cached_and_lookups_of_one_name_share_one_query(dns_server):
    resolver = lookups.Resolver(dns_server.address, 2)

    async def twice():
        first = await asyncio.gather(*(resolver.txt("remote.test") for _ in range(5)))
        again = await resolver.txt("remote.test")
        nothing = await resolver.txt("nothing.test")
        return first, again, nothing, await resolver.txt("nothing.test")

    first, again, nothing, nothing_again = run(twice())
    assert first == [[b"v=spf1 ip4:127.0.0.1 -all"]] * 5 and again == first[0]
    assert nothing == nothing_again == []
    assert resolver.queries == 2


def test_every_dkim_signature_is_reported(dns_server):
    resolver = lookups.Resolver(dns_server.address, 2)
    raw = signed(signed(message(), "signer.test", SIGNER_KEY))
    raw = b"DKIM-Signature: v=1; a=rsa-sha256; d=gone.test; s=sel; h=from; bh=x; b=y\r\n" + raw
    results = run(verify_dkim(raw, resolver))
    assert [(r.result, r.domain) for r in results] == [
        ("permerror", "gone.test"), ("pass", "remote.test"), ("pass", "signer.test")]


def test_organisational_domains_come_from_the_public_suffix_list():
    assert dmarc.organisational_domain("a.b.example.co.uk") == "example.co.uk"
    assert dmarc.organisational_domain("mail.example.com") == "example.com"
    assert dmarc.aligned("bounces.example.com", "example.com", "r")
    assert not dmarc.aligned("bounces.example.com", "example.com", "s")
    assert not dmarc.aligned("other.co.uk", "example.co.uk", "r")


def test_dmarc_records_are_read_as_rfc_7489_says():
    assert dmarc.parse_record(b"v=DMARC1; p=reject; pct=50") == {"p": "reject", "pct": "50"}
    assert dmarc.parse_record(b"v=spf1 -all") is None
    assert dmarc.from_domain(b"From: A <a@Example.COM>\r\n\r\n") == "example.com"
    assert dmarc.from_domain(b"From: a@x.test, b@y.test\r\n\r\n") is None
    assert dmarc.from_domain(b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n") is None


def test_pct_applies_the_policy_to_that_share_and_the_milder_one_to_the_rest():
    record = dmarc.Record("reject", pct=30)
    applied = [dmarc._sampled(record, random.Random(seed)) for seed in range(200)]
    assert set(applied) == {"reject", "quarantine"}
    assert 30 <= applied.count("reject") <= 90


def test_strip_ours_keeps_other_fields_and_the_body_exactly():
    raw = (b"Authentication-Results: mx.example.test;\r\n spf=pass\r\nSubject: x\r\n"
           b"Authentication-Results: mx.example.test.evil; none\r\n\r\n"
           b"Authentication-Results: mx.example.test; body line\r\n")
    assert authresults.strip_ours(raw, "mx.example.test") == (
        b"Subject: x\r\nAuthentication-Results: mx.example.test.evil; none\r\n\r\n"
        b"Authentication-Results: mx.example.test; body line\r\n")


# Hostile input --------------------------------------------------------------------------

HOSTILE = [
    # A header line without a colon: dkimpy cannot read the header section at all.
    b"DKIM-Signature: v=1; a=rsa-sha256; d=remote.test; s=sel; h=from; bh=!!; b=@@\r\n"
    b"no colon here\r\nFrom: bob@remote.test\r\n\r\nx\r\n",
    # Tags dkimpy must refuse: no selector, unknown algorithm, a key name with a NUL.
    b"DKIM-Signature: v=1; a=rsa-sha256; d=remote.test; h=from; bh=x; b=y\r\n"
    b"DKIM-Signature: v=1; a=md5; d=remote.test; s=sel; h=from; bh=x; b=y\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=re\x01mote.test; s=s\xff; h=from; bh=x; b=y\r\n"
    b"From: bob@remote.test\r\n\r\nx\r\n",
    # A broken ARC set.
    b"ARC-Seal: i=x; a=; b=\r\nARC-Message-Signature: i=1; d=remote.test; s=sel\r\n"
    b"ARC-Authentication-Results: i=1; nobody\r\nFrom: bob@remote.test\r\n\r\nx\r\n",
    # A From field with no usable address.
    b'From: "a" <@>\r\nSubject: x\r\n\r\nx\r\n',
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_signatures_and_headers_are_results_not_crashes(smtp, alice, raw):
    # The conftest guard fails the test on any internal error the server logs.
    assert smtp("[127.0.0.1]").send_mail(raw, "bob@remote.test",
                                         ("alice@example.test",)).startswith("250 ")
    results = authentication_results(raw_of(inbox(alice)[0]))
    assert "spf=pass smtp.mailfrom=remote.test" in results
    assert 'spf=none smtp.helo="[127.0.0.1]"' in results  # an address literal has no SPF
    assert "; dkim=pass" not in results and "; arc=pass" not in results


def test_only_the_first_signatures_are_verified(smtp, alice):
    raw = message()
    for n in range(15):
        raw = signed(raw.replace(b"Hello", f"Hello{n}".encode()) if n == 0 else raw)
    assert smtp().send_mail(raw, "bob@remote.test", ("alice@example.test",)).startswith("250")
    results = authentication_results(raw_of(inbox(alice)[0]))
    assert results.count("dkim=") == 10


def test_an_abandoned_lookup_fails_those_sharing_it_instead_of_leaving_them_waiting():
    resolver = lookups.Resolver("127.0.0.1:1", 5)  # nothing answers: the lookup hangs

    async def scenario():
        first = asyncio.ensure_future(resolver.txt("remote.test"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(resolver.txt("remote.test"))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(lookups.TempError):
            await asyncio.wait_for(second, 2)

    run(scenario())
