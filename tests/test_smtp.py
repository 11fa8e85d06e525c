"""The SMTP receiving side: extensions, recipient routing, durable delivery, hostile input."""

from __future__ import annotations

import re
import smtplib
import socket
import time

import pytest

from mailcore import directory, srs
from mailcore.models import (
    Blob,
    Domain,
    Mailbox,
    Message,
    OutboundMessage,
    OutboundRecipient,
)
from mailcore.store.blobs import blob_store
from tests.mailboxes import inbox, raw_of
from tests.servers import RawClient, client_tls_context

ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3} ")
BODY = b"From: sender@remote.test\r\nSubject: hello\r\n\r\nHello there\r\n"


# Helpers ----------------------------------------------------------------------------------

@pytest.fixture
def connect(server):
    """Open raw SMTP sessions that have read the greeting (and by default said EHLO)."""
    clients: list[RawClient] = []

    def open_session(ehlo: bool = True) -> RawClient:
        client = RawClient(server.port("smtp"))
        clients.append(client)
        assert client.smtp_reply().startswith("220 ")
        if ehlo:
            client.transact("EHLO client.test", "250 ", smtp=True)
        return client

    yield open_session
    for client in clients:
        client.close()


def ehlo_lines(client: RawClient, name: str = "client.test") -> list[str]:
    client.send(f"EHLO {name}")
    lines = [client.line()]
    while lines[-1][3] == "-":
        lines.append(client.line())
    return lines


def send_data(client: RawClient, body: bytes, mail_from: str = "sender@remote.test",
              rcpts: tuple[str, ...] = ("alice@example.test",)) -> str:
    """Run one transaction over a raw session; return the reply to the end of data."""
    return client.send_mail(body, mail_from, rcpts)




def assert_still_serving(server, rcpt: str = "alice@example.test") -> None:
    """A fresh connection gets a greeting and can deliver: the listener survived."""
    before = Message.objects.count()
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("check@remote.test", [rcpt], b"Subject: still up\r\n\r\nok\r\n")
    assert Message.objects.count() == before + 1


# Greeting and extensions ------------------------------------------------------------------

def test_ehlo_advertises_the_extensions_a_receiving_server_needs(connect):
    client = connect(ehlo=False)
    keywords = {line[4:].split()[0] for line in ehlo_lines(client)[1:]}
    assert {"SIZE", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES", "STARTTLS",
            "SMTPUTF8"} <= keywords
    assert "AUTH" not in keywords  # no submission on the receiving port


def test_ehlo_advertises_the_configured_size_limit(server, settings, connect):
    settings.MESSAGE_SIZE_LIMIT = 12345
    client = connect(ehlo=False)
    assert "250-SIZE 12345" in ehlo_lines(client)


def test_a_pipelined_transaction_gets_every_reply_in_order(connect, alice, bob):
    client = connect()
    client.send(b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    assert client.smtp_reply().startswith("250 2.1.0")
    assert client.smtp_reply().startswith("250 2.1.5")
    assert client.smtp_reply().startswith("550 5.1.1")
    assert client.smtp_reply().startswith("250 2.1.5")
    assert client.smtp_reply().startswith("354 ")
    client.send(BODY + b".\r\nNOOP\r\nQUIT\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")
    assert client.smtp_reply().startswith("250 2.0.0")
    assert client.smtp_reply().startswith("221 2.0.0")
    assert len(inbox(alice)) == 1
    assert len(inbox(bob)) == 1


def test_a_message_sent_with_smtputf8_reaches_an_internationalised_address(server, domain):
    jorg = directory.add_mailbox("jörg@example.test", "pw")
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", ["jörg@example.test"],
                      "Subject: grüße\r\n\r\nHallo\r\n".encode(), mail_options=["SMTPUTF8"])
    [message] = inbox(jorg)
    assert b"with UTF8SMTP" in raw_of(message)


# Recipients -------------------------------------------------------------------------------

def test_it_accepts_a_hosted_address(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<Alice@Example.TEST>", "250 2.1.5", smtp=True)


def test_it_refuses_an_unknown_user_on_a_hosted_domain(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<nobody@example.test>", "550 5.1.1", smtp=True)


def test_it_refuses_relay_for_unknown_domain(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<alice@example.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<someone@elsewhere.test>", "554 5.7.1", smtp=True)
    client.transact("RCPT TO:<alice@example.test.elsewhere.test>", "554 5.7.1", smtp=True)
    client.transact("DATA", "503 5.5.1", smtp=True)


def test_it_refuses_relay_for_a_domain_not_yet_verified(connect, transactional_db):
    claim = directory.add_domain("unproven.test", verified=False)
    directory.add_mailbox("dave@unproven.test", "pw", domain=claim)
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<dave@unproven.test>", "554 5.7.1", smtp=True)


def test_it_refuses_relay_for_a_deactivated_domain(connect, alice):
    Domain.objects.filter(name="example.test").update(is_active=False)
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "554 5.7.1", smtp=True)


def test_it_refuses_a_recipient_that_is_not_an_address(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice>", "501 5.1.3", smtp=True)
    client.transact("RCPT TO:<@example.test>", "5", smtp=True)


def test_an_alias_delivers_to_local_mailboxes_and_queues_remote_destinations(
        server, alice, bob):
    directory.add_alias("team@example.test",
                        ["alice@example.test", "bob@example.test", "carol@remote.test"])
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        refused = smtp.sendmail("sender@remote.test", ["team@example.test"], BODY)
    assert refused == {}
    [for_alice], [for_bob] = inbox(alice), inbox(bob)
    [outbound] = OutboundMessage.objects.all()
    # Forwarded with an SRS sender of ours (tests/test_srs.py), so SPF holds at the next hop.
    assert srs.reverse(outbound.mail_from) == "sender@remote.test"
    assert outbound.blob_id == for_alice.blob_id == for_bob.blob_id
    assert [r.address for r in OutboundRecipient.objects.filter(message=outbound)] == [
        "carol@remote.test"]
    assert Blob.objects.count() == 1


def test_an_alias_to_remote_destinations_only_is_queued(server, domain):
    directory.add_alias("fwd@example.test", ["someone@remote.test", "other@remote.test"])
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", ["fwd@example.test"], BODY)
    assert Message.objects.count() == 0
    assert sorted(OutboundRecipient.objects.values_list("address", flat=True)) == [
        "other@remote.test", "someone@remote.test"]


def test_a_catch_all_accepts_any_local_part_of_its_domain(server, connect, alice, bob):
    directory.add_alias("@example.test", ["alice@example.test"])
    client = connect()
    assert send_data(client, BODY, rcpts=("whoever@example.test",)).startswith("250 2.0.0")
    assert send_data(client, BODY, rcpts=("bob@example.test",)).startswith("250 2.0.0")
    assert len(inbox(alice)) == 1  # an existing mailbox still gets its own mail
    assert len(inbox(bob)) == 1
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<whoever@elsewhere.test>", "554 5.7.1", smtp=True)


def test_a_mailbox_over_quota_is_refused_temporarily_at_rcpt(connect, alice, bob):
    directory.set_quota(alice, 1000)
    Mailbox.objects.filter(pk=alice.pk).update(used_bytes=1001)
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "452 4.2.2", smtp=True)
    client.transact("RCPT TO:<bob@example.test>", "250 2.1.5", smtp=True)


def test_a_mailbox_exactly_at_its_quota_is_refused_at_rcpt(connect, alice):
    directory.set_quota(alice, 1000)
    Mailbox.objects.filter(pk=alice.pk).update(used_bytes=1000)
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "452 4.2.2", smtp=True)


def test_a_message_that_would_exceed_the_quota_is_refused_at_data(connect, alice):
    directory.set_quota(alice, 600)
    client = connect()
    body = BODY + b"x" * 70 + b"\r\n"
    assert send_data(client, body).startswith("250 2.0.0")
    reply = send_data(client, body * 4)
    assert reply.startswith("552 5.2.2")
    assert "alice@example.test" in reply
    assert len(inbox(alice)) == 1
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == inbox(alice)[0].size


def test_a_message_over_the_size_limit_is_refused_and_not_stored(server, settings, connect,
                                                                  alice):
    settings.MESSAGE_SIZE_LIMIT = 2000
    client = connect()
    reply = send_data(client, BODY + (b"y" * 78 + b"\r\n") * 40)
    assert reply.startswith("552 5.3.4")
    assert Message.objects.count() == 0
    assert Blob.objects.count() == 0
    assert send_data(client, BODY).startswith("250 2.0.0")  # the session goes on


def test_a_declared_size_over_the_limit_is_refused_at_mail(server, settings, connect, alice):
    settings.MESSAGE_SIZE_LIMIT = 2000
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test> SIZE=2001", "552 5.3.4", smtp=True)
    client.transact("MAIL FROM:<sender@remote.test> SIZE=2000", "250 2.1.0", smtp=True)


def test_too_many_recipients_are_refused_temporarily(server, settings, connect, alice, bob):
    settings.SMTP_MAX_RECIPIENTS = 2
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("RCPT TO:<bob@example.test>", "250 2.1.5", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "452 4.5.3", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY + b".\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")


# Delivery ---------------------------------------------------------------------------------

def test_delivery_puts_return_path_and_received_on_top(server, alice):
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.ehlo("client.test")
        smtp.sendmail("sender@remote.test", ["alice@example.test"], BODY)
    raw = raw_of(inbox(alice)[0])
    lines = raw.split(b"\r\n")
    assert lines[0] == b"Return-Path: <sender@remote.test>"
    assert lines[1].startswith(b"Received: from client.test ([127.0.0.1])")
    assert b"with ESMTP id " in raw
    assert b"for <alice@example.test>;" in raw
    assert raw.endswith(BODY)


def test_a_message_for_several_local_recipients_is_stored_once(server, alice, bob):
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", ["alice@example.test", "bob@example.test"], BODY)
    [for_alice], [for_bob] = inbox(alice), inbox(bob)
    [blob] = Blob.objects.all()
    assert for_alice.blob_id == for_bob.blob_id == blob.key
    assert for_alice.subject == "hello"
    assert b"for <" not in raw_of(for_alice)  # one copy cannot name each recipient


def test_a_recipient_reached_twice_gets_the_message_once(server, alice):
    directory.add_alias("me@example.test", ["alice@example.test"])
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", ["alice@example.test", "me@example.test"], BODY)
    assert len(inbox(alice)) == 1


def test_the_250_after_data_means_the_message_is_committed(connect, alice, bob):
    client = connect()
    reply = send_data(client, BODY, rcpts=("alice@example.test", "bob@example.test"))
    assert reply.startswith("250 2.0.0")
    # Read straight after the reply, from another connection than the server's.
    assert Message.objects.filter(folder__mailbox__in=[alice, bob]).count() == 2
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == inbox(alice)[0].size


def test_a_bounce_with_a_null_reverse_path_is_accepted(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY + b".\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")
    assert raw_of(inbox(alice)[0]).startswith(b"Return-Path: <>\r\n")


def test_a_bounce_forwarded_to_a_remote_destination_keeps_its_null_sender(connect, domain):
    directory.add_alias("fwd@example.test", ["someone@remote.test"])
    client = connect()
    client.transact("MAIL FROM:<>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<fwd@example.test>", "250 2.1.5", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY + b".\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")
    assert OutboundMessage.objects.get().mail_from == ""


def test_a_sender_that_is_no_mailbox_is_refused(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<postmaster>", "553 5.1.7", smtp=True)
    client.transact("MAIL FROM:<sender@>", "501 5.1.7", smtp=True)
    client.transact("MAIL FROM:<sen\x7fder@remote.test>", "553 5.1.7", smtp=True)
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)


def test_rset_forgets_the_transaction(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("RSET", "250 2.0.0", smtp=True)
    client.transact("DATA", "503 5.5.1", smtp=True)
    assert send_data(client, BODY).startswith("250 2.0.0")
    assert len(inbox(alice)) == 1


# Hostile input ----------------------------------------------------------------------------

def test_an_overlong_command_line_is_refused_and_the_session_goes_on(server, connect, alice):
    client = connect()
    client.transact("NOOP " + "a" * 5000, "500 5.5.2", smtp=True)
    client.transact("MAIL FROM:<" + "b" * 600 + "@remote.test>", "500 5.5.2", smtp=True)
    assert send_data(client, BODY).startswith("250 2.0.0")
    assert_still_serving(server)


def test_a_long_data_line_within_64k_is_accepted(server, connect, alice):
    client = connect()
    assert send_data(client, BODY + b"y" * 5000 + b"\r\n").startswith("250 2.0.0")
    assert b"y" * 5000 in blob_store().get(Message.objects.get().blob_id)


def test_an_overlong_data_line_is_refused_and_nothing_is_stored(server, connect, alice):
    client = connect()
    reply = send_data(client, BODY + b"z" * 70_000 + b"\r\nmore\r\n")
    assert reply.startswith("500 5.5.2")
    assert Message.objects.count() == 0
    assert send_data(client, BODY).startswith("250 2.0.0")
    assert_still_serving(server)


def test_bare_line_feeds_in_data_are_stored_as_crlf(server, connect, alice):
    client = connect()
    body = b"From: sender@remote.test\nSubject: unix\n\nline one\nline two\rline three\r\n"
    assert send_data(client, body).startswith("250 2.0.0")
    raw = raw_of(inbox(alice)[0])
    assert raw.endswith(
        b"Subject: unix\r\n\r\nline one\r\nline two\r\nline three\r\n")
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None
    assert inbox(alice)[0].subject == "unix"
    assert_still_serving(server)


def test_a_long_message_with_only_bare_line_feeds_is_accepted(server, connect, alice):
    client = connect()
    body = b"Subject: unix\n\n" + b"a line of a message sent with bare line feeds\n" * 200
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(body + b"\r\n.\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")
    raw = raw_of(inbox(alice)[0])
    assert raw.count(b"a line of a message sent with bare line feeds\r\n") == 200


def test_a_bare_line_feed_dot_does_not_end_the_data(server, connect, alice, bob):
    # SMTP smuggling: only CRLF.CRLF ends the data, so no second message sneaks in.
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY + b"\n.\nMAIL FROM:<ceo@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
                b"DATA\r\nSubject: smuggled\r\n\r\n.\r\nNOOP\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")
    assert client.smtp_reply().startswith("250 2.0.0")  # the NOOP, nothing in between
    assert len(inbox(alice)) == 1
    assert inbox(bob) == []
    assert b"MAIL FROM:<ceo@example.test>" in raw_of(inbox(alice)[0])


def test_a_leading_dot_is_unstuffed(connect, alice):
    client = connect()
    assert send_data(client, BODY + b"..one dot\r\n...\r\n").startswith("250 2.0.0")
    assert raw_of(inbox(alice)[0]).endswith(BODY + b".one dot\r\n..\r\n")


def test_nul_bytes_in_data_are_refused_and_nothing_is_stored(server, connect, alice):
    client = connect()
    assert send_data(client, BODY + b"bad\0byte\r\n").startswith("554 5.6.0")
    assert Message.objects.count() == 0
    assert Blob.objects.count() == 0
    assert send_data(client, BODY).startswith("250 2.0.0")
    assert_still_serving(server)


def test_nul_bytes_in_commands_get_a_clear_reply(server, connect, alice):
    client = connect()
    client.send(b"NO\0OP\r\n")
    assert client.smtp_reply().startswith("500 5.5.2")
    client.transact("MAIL FROM:<sen\0der@remote.test>", "553 5.1.7", smtp=True)
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<ali\0ce@example.test>", "501 5.1.3", smtp=True)
    client.transact("RCPT TO:<alice@example.test>\0", "501 5.5.4", smtp=True)
    client.transact("RSET", "250 2.0.0", smtp=True)
    client.transact("EHLO bad\0name", "250 ", smtp=True)
    assert send_data(client, BODY).startswith("250 2.0.0")
    assert b"\0" not in raw_of(inbox(alice)[0])
    assert_still_serving(server)


def test_invalid_utf8_in_commands_gets_a_clear_reply(server, connect, alice):
    client = connect()
    client.send(b"\xff\xfe\xfd\r\n")
    assert client.smtp_reply().startswith("500 5.5.2")
    client.send(b"EHLO h\xffst\r\n")
    assert client.smtp_reply().startswith("250 ")
    client.send(b"VRFY \xff\xfe@example.test\r\n")
    assert client.smtp_reply().startswith("252 2.0.0")
    client.send(b"VRFY @\xff\x1b\r\n")  # quoted back in the reply, made safe
    assert client.smtp_reply() == "502 5.5.1 Could not VRFY @??"
    client.send(b"MAIL FROM:<\xff\xfe@remote.test>\r\n")
    assert client.smtp_reply().startswith("553 5.1.7")
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.send(b"RCPT TO:<\xff\xfe@example.test>\r\n")
    assert client.smtp_reply().startswith("501 5.1.3")
    client.send(b"RCPT TO:<alice@\xff\xfe.test>\r\n")
    assert client.smtp_reply().startswith("501 5.1.3")
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY + b".\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")
    assert b"Received: from hst ([127.0.0.1])" in raw_of(inbox(alice)[0])
    assert_still_serving(server)


def test_garbage_before_helo_gets_a_clear_reply(server, connect, alice):
    client = connect(ehlo=False)
    # What a TLS client speaking too early, or line noise, looks like.
    client.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n")
    assert client.smtp_reply().startswith("500 5.5.2")
    client.send(b"\r\n")
    assert client.smtp_reply().startswith("500 5.5.2")
    client.send(b"GET / HTTP/1.1\r\n")
    assert client.smtp_reply().startswith("500 5.5.2")
    client.transact("EHLO client.test", "250 ", smtp=True)
    assert send_data(client, BODY).startswith("250 2.0.0")
    assert_still_serving(server)


# Addresses the stdlib parser inside aiosmtpd trips over (IndexError, AttributeError).
MALFORMED_PATHS = ("<", "<a@", "<@", " <", "a@", '"', '<"', "<a@[", "<@b:", "<sender@>")


def test_a_malformed_sender_address_gets_postfixs_501_5_1_7(server, settings, connect, alice):
    settings.SMTP_MAX_BAD_COMMANDS = 100
    client = connect()
    for path in MALFORMED_PATHS:
        reply = client.transact(f"MAIL FROM:{path}", "", smtp=True)
        assert reply == "501 5.1.7 Bad sender address syntax", path
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)


def test_a_malformed_recipient_address_gets_postfixs_501_5_1_3(server, settings, connect,
                                                               alice):
    settings.SMTP_MAX_BAD_COMMANDS = 100
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    for path in MALFORMED_PATHS:
        reply = client.transact(f"RCPT TO:{path}", "", smtp=True)
        assert reply == "501 5.1.3 Bad recipient address syntax", path
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)


def test_vrfy_of_a_truncated_address_gets_a_clear_reply(server, settings, connect, alice):
    settings.SMTP_MAX_BAD_COMMANDS = 100
    client = connect()
    for path in MALFORMED_PATHS:
        reply = client.transact(f"VRFY {path}", "", smtp=True)
        assert reply.startswith("502 5.5.1 Could not VRFY"), path
    client.transact("VRFY alice@example.test", "252 2.0.0", smtp=True)


def test_a_malformed_address_waits_its_turn_behind_helo_and_mail(connect, alice):
    client = connect(ehlo=False)
    client.transact("MAIL FROM:<", "503 5.5.1", smtp=True)
    client.transact("EHLO client.test", "250 ", smtp=True)
    client.transact("RCPT TO:<", "503 5.5.1", smtp=True)


def test_malformed_addresses_spend_the_error_budget(server, settings, connect, alice):
    settings.SMTP_MAX_BAD_COMMANDS = 3
    client = connect()
    client.send(b"MAIL FROM:<\r\nMAIL FROM:<a@\r\nMAIL FROM:<@\r\n"
                b"MAIL FROM:<sender@remote.test>\r\n")
    assert [client.smtp_reply()[:9] for _ in range(3)] == ["501 5.1.7"] * 3
    assert client.smtp_reply().startswith("421 4.7.0")
    assert client.closed()
    assert client.buffer == b""
    assert_still_serving(server)


@pytest.mark.parametrize("line", [b"MAIL FROM:<", b"RCPT TO:<alice@example.test>", b"BOGUS"])
def test_a_tls_session_closed_for_errors_runs_nothing_pipelined_behind(server, settings, connect,
                                                                       alice, line):
    settings.SMTP_MAX_BAD_COMMANDS = 10
    client = connect()
    client.transact("STARTTLS", "220 2.0.0", smtp=True)
    client.starttls()
    client.transact("EHLO client.test", "250 ", smtp=True)
    client.send((line + b"\r\n") * 40)
    replies = []
    while not replies or not replies[-1].startswith("421"):
        replies.append(client.smtp_reply())
    assert len(replies) <= 11  # the 421 comes at the latest after the tenth bad line
    assert client.closed()
    assert client.buffer == b""
    assert_still_serving(server)


def test_mail_before_helo_is_refused(connect, alice):
    client = connect(ehlo=False)
    client.transact("MAIL FROM:<sender@remote.test>", "503 5.5.1", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "503 5.5.1", smtp=True)
    client.transact("DATA", "503 5.5.1", smtp=True)
    client.transact("HELO client.test", "250 ", smtp=True)
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)


def test_a_client_vanishing_mid_data_stores_nothing(server, connect, alice):
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY + b"and then the line dro")
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()
    assert_still_serving(server)
    assert [m.subject for m in inbox(alice)] == ["still up"]


def test_too_many_bad_commands_end_the_session(server, settings, connect, alice):
    settings.SMTP_MAX_BAD_COMMANDS = 3
    client = connect()
    client.transact("RCPT TO:<alice@example.test>", "503 5.5.1", smtp=True)
    client.transact("MAIL FROM:", "501 5.5.4", smtp=True)
    # The third bad command, then commands pipelined behind it that must not run.
    client.send(b"DATA\r\nMAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n")
    assert client.smtp_reply().startswith("503 5.5.1")
    assert client.smtp_reply().startswith("421 4.7.0")
    assert client.closed()
    assert client.buffer == b""
    assert_still_serving(server)


def test_too_many_unknown_commands_end_the_session_with_421(server, connect, alice):
    client = connect()
    replies = []
    for _ in range(20):
        client.send("BOGUS")
        replies.append(client.smtp_reply())
        if not replies[-1].startswith("500"):
            break
    assert all(r.startswith("500 5.5.2") for r in replies[:-1])
    assert replies[-1].startswith("421 4.7.0")
    assert client.closed()
    assert_still_serving(server)


def test_an_idle_client_is_told_and_disconnected(server, settings, connect, alice):
    settings.SMTP_TIMEOUT = 0.5
    client = connect()
    assert client.smtp_reply().startswith("421 4.4.2")
    assert client.closed()
    assert_still_serving(server)


def test_a_client_stalling_mid_data_times_out_and_nothing_is_stored(server, settings, connect,
                                                                    alice):
    settings.SMTP_TIMEOUT = 0.5
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY)
    assert client.smtp_reply().startswith("421 4.4.2")
    assert client.closed()
    assert Message.objects.count() == 0


def test_a_slow_but_steady_data_transfer_is_not_cut_off(server, settings, connect, alice):
    # The timeout is for idleness, not for the whole DATA transfer.
    settings.SMTP_TIMEOUT = 1
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<alice@example.test>", "250 2.1.5", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY)
    for _ in range(6):  # 1.5 s in all, never more than 0.25 s idle
        time.sleep(0.25)
        client.send(b"a little more\r\n")
    client.send(b".\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")


def test_too_many_received_headers_are_refused_as_a_loop(server, settings, connect, alice):
    settings.SMTP_MAX_RECEIVED_HEADERS = 5
    client = connect()
    hop = b"Received: from a.test by b.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    assert send_data(client, hop * 5 + BODY).startswith("554 5.4.6")
    assert Message.objects.count() == 0
    assert send_data(client, hop * 4 + BODY).startswith("250 2.0.0")
    # Received fields quoted in the body are no hops.
    assert send_data(client, BODY + hop * 9).startswith("250 2.0.0")


# STARTTLS ---------------------------------------------------------------------------------

def test_starttls_secures_the_session_and_is_no_longer_offered(server, alice):
    with smtplib.SMTP("localhost", server.port("smtp"), timeout=10) as smtp:
        smtp.ehlo("client.test")
        assert smtp.has_extn("starttls")
        code, message = smtp.starttls(context=client_tls_context())
        assert code == 220
        assert message.startswith(b"2.0.0")
        smtp.ehlo("client.test")
        assert not smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        smtp.sendmail("sender@remote.test", ["alice@example.test"], BODY)
    assert b"with ESMTPS id" in raw_of(inbox(alice)[0])


def test_commands_pipelined_behind_starttls_are_not_honoured(connect, alice):
    client = connect()
    client.send(b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n"
                b"RCPT TO:<alice@example.test>\r\n")
    assert client.smtp_reply().startswith("220 ")
    assert client.buffer == b""
    client.starttls()
    # A reply to an injected command would come before this EHLO's.
    lines = ehlo_lines(client)
    assert lines[0].startswith("250-")
    assert "250-STARTTLS" not in lines
    client.transact("RCPT TO:<alice@example.test>", "503 5.5.1", smtp=True)
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)


def test_the_session_starts_over_after_starttls(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    client.transact("STARTTLS", "220 2.0.0", smtp=True)
    client.starttls()
    client.transact("MAIL FROM:<sender@remote.test>", "503 5.5.1", smtp=True)  # EHLO first
    client.transact("STARTTLS", "503 5.5.1", smtp=True)  # no TLS inside TLS


def test_a_failed_tls_handshake_is_no_internal_error(server, connect, alice):
    client = connect()
    client.transact("STARTTLS", "220 2.0.0", smtp=True)
    client.send("this is not a TLS client hello")
    assert client.closed()
    assert_still_serving(server)


def test_a_client_hanging_up_during_the_tls_handshake_is_no_internal_error(
        server, connect, alice):
    client = connect()
    client.transact("STARTTLS", "220 2.0.0", smtp=True)
    client.close()
    assert_still_serving(server)


# Replies ----------------------------------------------------------------------------------

def test_every_reply_carries_an_enhanced_status_code(server, settings, connect, alice):
    settings.SMTP_MAX_BAD_COMMANDS = 100
    client = connect(ehlo=False)
    commands = [
        "NOOP", "MAIL FROM:<sender@remote.test>", "HELO client.test", "EHLO", "HELP",
        "HELP MAIL", "VRFY alice@example.test", "EXPN staff", "BOGUS", "RCPT TO:<x@y.test>",
        "DATA", "MAIL FROM:", "MAIL FROM:<sender@remote.test> BODY=9BIT",
        "MAIL FROM:<sender@remote.test> FOO=1", "MAIL FROM:<a b c>",
        "MAIL FROM:<sender@remote.test>", "MAIL FROM:<sender@remote.test>",
        "RCPT TO:", "RCPT TO:<nobody@example.test>", "RCPT TO:<x@elsewhere.test>",
        "RCPT TO:<alice@example.test> FOO=1", "RCPT TO:<alice@example.test>",
        "DATA extra", "AUTH PLAIN", "RSET", "STARTTLS now", "QUIT now", "QUIT",
    ]
    replies = []
    for command in commands:
        client.send(command)
        replies.append((command, client.smtp_reply()))
    unmarked = [(c, r) for c, r in replies
                if not ENHANCED.match(r) and not c.startswith(("HELO", "EHLO"))]
    assert unmarked == []
    codes = [r[:3] for _, r in replies]
    assert {"500", "501", "502", "503", "550", "554"} <= set(codes)


@pytest.mark.allow_internal_errors
def test_an_internal_error_at_data_is_not_echoed_to_the_client(
        server, connect, alice, monkeypatch, _fail_on_internal_errors):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail from deep inside")

    monkeypatch.setattr("mailcore.smtp.server.deliver", broken)
    client = connect()
    reply = send_data(client, BODY)
    match = re.fullmatch(r"451 4\.3\.0 .*\(session ([0-9a-f]+)\)", reply)
    assert match, reply
    assert "secret" not in reply and "RuntimeError" not in reply
    [record] = _fail_on_internal_errors.records
    assert match.group(1) in record.getMessage()
    client.transact("NOOP", "250 2.0.0", smtp=True)


@pytest.mark.allow_internal_errors
def test_an_internal_error_in_a_command_is_not_echoed_to_the_client(
        server, connect, alice, monkeypatch, _fail_on_internal_errors):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail from deep inside")

    monkeypatch.setattr("mailcore.smtp.server.resolve", broken)
    client = connect()
    client.transact("MAIL FROM:<sender@remote.test>", "250 2.1.0", smtp=True)
    reply = client.transact("RCPT TO:<alice@example.test>", "451 4.3.0", smtp=True)
    assert "secret" not in reply and "RuntimeError" not in reply
    assert _fail_on_internal_errors.records
    client.transact("NOOP", "250 2.0.0", smtp=True)


def test_accepted_and_refused_mail_is_counted_for_the_dashboard(server, connect, alice):
    from mailcore import stats
    from mailcore.models import TrafficCount

    client = connect()
    client.transact("MAIL FROM:<a@remote.test>", "250", smtp=True)
    client.transact("RCPT TO:<nobody@example.test>", "550 5.1.1", smtp=True)
    client.transact("RCPT TO:<x@elsewhere.test>", "554 5.7.1", smtp=True)
    client.transact("RSET", "250", smtp=True)
    assert send_data(client, BODY).startswith("250 2.0.0")
    stats.tally.flush()
    counts = dict(TrafficCount.objects.values_list("kind", "count"))
    # The message also counts by its verdict (inbox); refusals at RCPT have none.
    assert counts == {"received": 1, "inbox": 1, "rejected": 2}
