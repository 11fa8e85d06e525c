"""DSN building (RFC 3464) and DKIM signing (RFC 6376): what leaves the server is well formed."""

from __future__ import annotations

import email
from datetime import UTC, datetime

import dkim
import pytest

from mailcore import directory
from mailcore import dkim as mailcore_dkim
from mailcore.dsn import RecipientReport, build

ORIGINAL = (b"From: alice@example.test\r\nTo: carol@remote.test\r\nSubject: Hi\r\n\r\n"
            b"Body line\r\n")
ARRIVAL = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw)


def test_a_failure_dsn_is_a_multipart_report_with_three_parts():
    raw = build(reporting_mta="mx.example.test", sender="alice@example.test",
                original=ORIGINAL, arrival=ARRIVAL, envelope_id="env-1",
                reports=[RecipientReport("carol@remote.test", "failed", "5.1.1",
                                         "550 5.1.1 no such user", "mx.remote.test",
                                         "rfc822; Carol@remote.test")])
    msg = parse(raw)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    human, status, returned = msg.get_payload()
    assert "carol@remote.test" in human.get_payload(decode=True).decode()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Original-Envelope-Id"] == "env-1"
    assert per_message["Arrival-Date"] == "Fri, 27 Nov 2026 09:00:00 +0000"
    assert per_recipient["Original-Recipient"] == "rfc822; Carol@remote.test"
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"Body line" not in raw


def test_a_full_return_carries_the_whole_original():
    raw = build(reporting_mta="mx.example.test", sender="alice@example.test",
                original=ORIGINAL, arrival=ARRIVAL, return_full=True,
                reports=[RecipientReport("carol@remote.test", "failed", "5.0.0")])
    returned = parse(raw).get_payload()[2]
    assert returned.get_content_type() == "message/rfc822"
    assert returned.get_payload()[0]["Subject"] == "Hi"


def test_a_remote_reply_cannot_inject_header_lines():
    raw = build(reporting_mta="mx.example.test", sender="alice@example.test",
                original=ORIGINAL, arrival=ARRIVAL,
                reports=[RecipientReport("carol@remote.test", "failed", "5.0.0",
                                         "550 bad\r\nX-Injected: yes")])
    status = parse(raw).get_payload()[1].get_payload()[1]
    assert status["X-Injected"] is None
    assert status["Diagnostic-Code"] == "smtp; 550 bad X-Injected: yes"


@pytest.mark.django_db
def test_a_new_domain_gets_a_2048_bit_key_and_signatures_verify():
    domain = directory.add_domain("example.test")
    name, value = mailcore_dkim.dns_record(domain)
    assert name == "mail._domainkey.example.test"
    assert value.startswith("v=DKIM1; k=rsa; p=")
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(domain.dkim_private_key.encode(), None)
    assert key.key_size == 2048

    signed = mailcore_dkim.sign(ORIGINAL, domain)
    assert signed.startswith(b"DKIM-Signature:")

    def dns(qname: bytes, timeout: int = 5) -> bytes:
        assert qname == b"mail._domainkey.example.test."
        return value.encode()

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"Body line", b"Body lime"), dnsfunc=dns)
