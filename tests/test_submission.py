"""Mail submission (RFC 6409): AUTH over TLS, sender rules, limits, signing and delivery."""

from __future__ import annotations

import base64
import email
import logging
import re
import smtplib
import subprocess

import dkim
import pytest

from mailcore import directory
from mailcore.dkim import dns_record
from mailcore.models import Domain, Mailbox, Message, OutboundMessage, OutboundRecipient
from mailcore.principal import Principal
from mailcore.queue import attempts
from mailcore.sending import outgoing
from mailcore.store.delivery import QuotaExceeded
from tests.conftest import PASSWORD, require_program
from tests.mailboxes import inbox, raw_of
from tests.servers import RawClient, client_tls_context
from tests.sink import Sink

ALICE = "alice@example.test"
ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3} ")
BODY = (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\n"
        b"Hello Bob\r\n")


# Helpers ----------------------------------------------------------------------------------

def plain(user: str = ALICE, password: str = PASSWORD, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def connect(server):
    """Open raw submission sessions: greeting read, EHLO said, TLS and AUTH as asked."""
    clients: list[RawClient] = []

    def open_session(tls: bool = True, login: str | None = ALICE,
                     implicit: bool = False, source: str = "") -> RawClient:
        client = RawClient(server.port("submissions" if implicit else "submission"),
                           tls=implicit, source=source)
        clients.append(client)
        assert client.smtp_reply().startswith("220 ")
        client.transact("EHLO client.test", "250 ", smtp=True)
        if tls and not implicit:
            client.transact("STARTTLS", "220 2.0.0", smtp=True)
            client.starttls()
            client.transact("EHLO client.test", "250 ", smtp=True)
        if login:
            client.transact(f"AUTH PLAIN {plain(login)}", "235 2.7.0", smtp=True)
        return client

    yield open_session
    for client in clients:
        client.close()


@pytest.fixture
def smtp(server):
    """Open smtplib sessions on the submission port, after STARTTLS, not yet logged in."""
    sessions: list[smtplib.SMTP] = []

    def open_session() -> smtplib.SMTP:
        session = smtplib.SMTP("localhost", server.port("submission"), timeout=10)
        sessions.append(session)
        session.starttls(context=client_tls_context())
        session.ehlo("client.test")
        return session

    yield open_session
    for session in sessions:
        session.close()


def ehlo_keywords(client: RawClient) -> set[str]:
    client.send("EHLO client.test")
    lines = [client.line()]
    while lines[-1][3] == "-":
        lines.append(client.line())
    return {line[4:].split()[0] for line in lines[1:]}


def send_data(client: RawClient, body: bytes, mail_from: str = ALICE,
              rcpts: tuple[str, ...] = ("bob@example.test",)) -> str:
    return client.send_mail(body, mail_from, rcpts)




def dkim_verifies(raw: bytes, domain_name: str = "example.test") -> bool:
    name, value = dns_record(Domain.objects.get(name=domain_name))

    def dnsfunc(query: bytes, timeout: float = 5) -> bytes:
        return value.encode() if query.decode().rstrip(".") == name else b""

    return dkim.verify(raw, dnsfunc=dnsfunc)


@pytest.fixture
def sink(settings):
    with Sink() as running:
        settings.OUTBOUND_TRANSPORTS = f"remote.test=127.0.0.1:{running.port}"
        yield running


# TLS before AUTH, AUTH before mail ---------------------------------------------------------

def test_auth_is_not_offered_before_starttls(settings, connect, alice):
    settings.PLAINTEXT_AUTH = "never"
    client = connect(tls=False, login=None)
    keywords = ehlo_keywords(client)
    assert "STARTTLS" in keywords
    assert "AUTH" not in keywords


def test_auth_before_starttls_is_refused(settings, connect, alice):
    settings.PLAINTEXT_AUTH = "never"
    client = connect(tls=False, login=None)
    client.transact(f"AUTH PLAIN {plain()}", "538 5.7.11", smtp=True)
    client.transact("AUTH LOGIN", "538 5.7.11", smtp=True)


@pytest.mark.parametrize("policy", ["loopback", "always"])
def test_auth_without_tls_is_allowed_from_loopback_or_behind_a_tls_proxy(
        settings, connect, alice, bob, policy):
    # PLAINTEXT_AUTH means the same for submission as for IMAP and POP3: "loopback" is
    # development's default, and the client here is on 127.0.0.1.
    settings.PLAINTEXT_AUTH = policy
    client = connect(tls=False, login=None)
    assert "AUTH" in ehlo_keywords(client)
    client.transact(f"AUTH PLAIN {plain()}", "235 2.7.0", smtp=True)
    assert send_data(client, BODY).startswith("250 ")
    assert len(inbox(bob)) == 1


def test_auth_is_offered_after_starttls(connect, alice):
    client = connect(login=None)
    client.send("EHLO client.test")
    lines = [client.line()]
    while lines[-1][3] == "-":
        lines.append(client.line())
    assert "250-AUTH LOGIN PLAIN" in lines
    assert "250-STARTTLS" not in lines


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_mail_without_auth_is_refused(connect, alice, tls):
    client = connect(tls=tls, login=None)
    client.transact(f"MAIL FROM:<{ALICE}>", "530 5.7.0", smtp=True)
    client.transact("RCPT TO:<someone@remote.test>", "530 5.7.0", smtp=True)
    client.transact("DATA", "530 5.7.0", smtp=True)
    assert OutboundMessage.objects.count() == 0


def test_auth_plain_with_smtplib_sends_mail(smtp, alice, bob):
    session = smtp()
    session.user, session.password = ALICE, PASSWORD
    code, _ = session.auth("PLAIN", session.auth_plain)
    assert code == 235
    assert session.sendmail(ALICE, ["bob@example.test"], BODY) == {}
    assert len(inbox(bob)) == 1


def test_auth_login_with_smtplib_sends_mail(smtp, alice, bob):
    session = smtp()
    session.user, session.password = ALICE, PASSWORD
    code, _ = session.auth("LOGIN", session.auth_login, initial_response_ok=False)
    assert code == 235
    assert session.sendmail(ALICE, ["bob@example.test"], BODY) == {}
    assert len(inbox(bob)) == 1


def test_smtplib_login_picks_a_mechanism_and_works(smtp, alice, bob):
    session = smtp()
    session.login(ALICE, PASSWORD)
    session.sendmail(ALICE, ["bob@example.test"], BODY)
    assert len(inbox(bob)) == 1


def test_auth_plain_may_wait_for_the_challenge(connect, alice):
    client = connect(login=None)
    client.transact("AUTH PLAIN", "334 ", smtp=True)
    client.transact(plain(), "235 2.7.0", smtp=True)
    client.transact("AUTH PLAIN", "503 5.5.1", smtp=True)  # already authenticated


def test_auth_login_asks_for_user_name_then_password(connect, alice):
    client = connect(login=None)
    reply = client.transact("AUTH LOGIN", "334 ", smtp=True)
    assert base64.b64decode(reply[4:]) == b"Username:"
    reply = client.transact(b64(ALICE), "334 ", smtp=True)
    assert base64.b64decode(reply[4:]) == b"Password:"
    client.transact(b64(PASSWORD), "235 2.7.0", smtp=True)


def test_auth_login_with_an_initial_user_name(connect, alice):
    client = connect(login=None)
    client.transact(f"AUTH LOGIN {b64(ALICE)}", "334 ", smtp=True)
    client.transact(b64(PASSWORD), "235 2.7.0", smtp=True)


def test_implicit_tls_submission_works(server, alice, bob):
    with smtplib.SMTP_SSL("localhost", server.port("submissions"), timeout=10,
                          context=client_tls_context()) as session:
        session.ehlo("client.test")
        assert session.has_extn("auth")
        assert not session.has_extn("starttls")
        session.login(ALICE, PASSWORD)
        session.sendmail(ALICE, ["bob@example.test"], BODY)
    assert b"with ESMTPSA id" in raw_of(inbox(bob)[0])


def test_the_mx_port_still_offers_no_auth_even_over_tls(server, alice):
    client = RawClient(server.port("smtp"))
    assert client.smtp_reply().startswith("220 ")
    client.transact("EHLO client.test", "250 ", smtp=True)
    client.transact("STARTTLS", "220 2.0.0", smtp=True)
    client.starttls()
    assert "AUTH" not in ehlo_keywords(client)
    client.transact(f"AUTH PLAIN {plain()}", "504 5.5.4", smtp=True)
    client.transact(f"MAIL FROM:<{ALICE}>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<someone@remote.test>", "554 5.7.1", smtp=True)
    client.close()


# Failed logins ----------------------------------------------------------------------------

def test_a_wrong_password_is_refused(connect, alice):
    client = connect(login=None)
    client.transact(f"AUTH PLAIN {plain(password='wrong')}", "535 5.7.8", smtp=True)
    client.transact(f"AUTH PLAIN {plain(user='nobody@example.test')}", "535 5.7.8", smtp=True)
    client.transact(f"MAIL FROM:<{ALICE}>", "530 5.7.0", smtp=True)


def test_an_authzid_other_than_the_user_is_refused(connect, alice, bob):
    client = connect(login=None)
    client.transact(f"AUTH PLAIN {plain(authzid='bob@example.test')}", "535 5.7.8", smtp=True)
    client.transact(f"AUTH PLAIN {plain(authzid=ALICE)}", "235 2.7.0", smtp=True)


def test_too_many_failed_logins_close_the_connection(connect, alice):
    client = connect(login=None)
    client.transact(f"AUTH PLAIN {plain(password='wrong1')}", "535 5.7.8", smtp=True)
    client.transact(f"AUTH PLAIN {plain(password='wrong2')}", "535 5.7.8", smtp=True)
    client.transact(f"AUTH PLAIN {plain(password='wrong3')}", "421 4.7.0", smtp=True)
    assert client.closed()


def test_logins_are_rate_limited_after_too_many_failures(settings, connect, alice):
    settings.AUTH_MAX_FAILURES = 2
    client = connect(login=None)
    client.transact(f"AUTH PLAIN {plain(password='wrong1')}", "535 5.7.8", smtp=True)
    client.transact(f"AUTH PLAIN {plain(password='wrong2')}", "535 5.7.8", smtp=True)
    # Even the right password, from a new connection, waits out the window.
    client = connect(login=None)
    reply = client.transact(f"AUTH PLAIN {plain()}", "454 4.7.0", smtp=True)
    assert "Too many failed logins" in reply


def test_failures_from_one_address_refuse_only_that_address(settings, connect, alice, bob):
    # The decoy scenario: guesses for alice and for names that do not exist, from
    # one address (127.0.0.2), refuse that address, not alice from anywhere else.
    settings.AUTH_MAX_FAILURES = 3
    for user in (ALICE, ALICE, ALICE):
        client = connect(login=None, source="127.0.0.2")
        client.transact(f"AUTH PLAIN {plain(user, 'wrong')}", "535 5.7.8", smtp=True)
    client = connect(login=None, source="127.0.0.2")
    client.transact(f"AUTH PLAIN {plain('decoy2@example.test')}", "454 4.7.0", smtp=True)
    client = connect(login=None, source="127.0.0.2")
    client.transact(f"AUTH PLAIN {plain('bob@example.test')}", "454 4.7.0", smtp=True)
    client = connect(login=None, source="127.0.0.3")
    client.transact(f"AUTH PLAIN {plain()}", "235 2.7.0", smtp=True)


def test_a_cancelled_or_malformed_exchange_is_refused(connect, alice):
    client = connect(login=None)
    client.transact("AUTH PLAIN", "334 ", smtp=True)
    client.transact("*", "501 5.7.0", smtp=True)
    client.transact("AUTH PLAIN not-base64!", "501 5.5.2", smtp=True)
    client.transact(f"AUTH PLAIN {b64('no nul bytes')}", "501 5.5.2", smtp=True)
    client.transact("AUTH LOGIN", "334 ", smtp=True)
    client.transact(b64(ALICE), "334 ", smtp=True)
    client.transact("*", "501 5.7.0", smtp=True)
    client.transact("AUTH CRAM-MD5", "504 5.5.4", smtp=True)
    client.transact(f"AUTH PLAIN {plain()}", "235 2.7.0", smtp=True)


def test_passwords_never_reach_the_log(connect, alice, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mail.log")  # aiosmtpd's own, quiet by default
    client = connect(login=None)
    client.transact(f"AUTH PLAIN {plain(password='wrong-secret')}", "535 5.7.8", smtp=True)
    client.transact("AUTH LOGIN", "334 ", smtp=True)
    client.transact(b64(ALICE), "334 ", smtp=True)
    client.transact(b64(PASSWORD), "235 2.7.0", smtp=True)
    client.transact("QUIT", "221 ", smtp=True)
    text = caplog.text
    assert "auth failed mechanism=PLAIN user=alice@example.test" in text
    for secret in ("wrong-secret", PASSWORD, plain(password="wrong-secret"), b64(PASSWORD)):
        assert secret not in text


def test_an_overlong_auth_response_is_refused_and_the_session_goes_on(connect, alice):
    client = connect(login=None)
    client.transact("AUTH LOGIN", "334 ", smtp=True)
    client.transact("A" * 70_000, "501 5.5.2", smtp=True)
    client.transact(f"AUTH PLAIN {plain()}", "235 2.7.0", smtp=True)


def test_a_client_hanging_up_during_auth_is_no_internal_error(server, connect, alice, bob):
    client = connect(login=None)
    client.transact("AUTH LOGIN", "334 ", smtp=True)
    client.send(b64(ALICE)[:3])
    client.close()
    client = connect()
    assert send_data(client, BODY).startswith("250 2.0.0")


def test_a_failed_implicit_tls_handshake_is_no_internal_error(connect, server, alice, bob):
    raw = RawClient(server.port("submissions"))
    raw.send("EHLO this is not a TLS client hello")
    assert raw.closed()
    raw.close()
    client = connect(implicit=True)
    assert send_data(client, BODY).startswith("250 2.0.0")


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
@pytest.mark.parametrize("line", [b"MAIL FROM:<", b"RCPT TO:<bob@example.test>", b"BOGUS"])
def test_a_session_closed_for_errors_runs_nothing_pipelined_behind(settings, connect, alice,
                                                                   bob, implicit, line):
    settings.SMTP_MAX_BAD_COMMANDS = 10
    client = connect(implicit=implicit)
    client.send((line + b"\r\n") * 40)
    replies = []
    while not replies or not replies[-1].startswith("421"):
        replies.append(client.smtp_reply())
    assert len(replies) <= 11  # the 421 comes at the latest after the tenth bad line
    assert replies[-1].startswith("421 4.7.0")
    assert client.closed()
    assert client.buffer == b""
    assert send_data(connect(implicit=implicit), BODY).startswith("250 2.0.0")


def test_a_malformed_address_gets_a_syntax_reply_after_auth(connect, alice):
    client = connect()
    client.transact("MAIL FROM:<a@", "501 5.1.7", smtp=True)
    client.transact(f"MAIL FROM:<{ALICE}>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<@", "501 5.1.3", smtp=True)


def test_a_malformed_address_before_auth_is_refused_for_want_of_auth(connect, alice):
    client = connect(login=None)
    client.transact("MAIL FROM:<", "530 5.7.0", smtp=True)


def test_every_submission_reply_carries_an_enhanced_status_code(settings, connect, alice):
    settings.SMTP_MAX_BAD_COMMANDS = 100
    settings.PLAINTEXT_AUTH = "never"
    client = connect(tls=False, login=None)
    commands = ["NOOP", "HELP", "VRFY alice@example.test", f"AUTH PLAIN {plain()}",
                f"MAIL FROM:<{ALICE}>", "RCPT TO:<bob@example.test>", "DATA", "STARTTLS"]
    replies = [(c, client.transact(c, "", smtp=True)) for c in commands]
    client.starttls()
    client.transact("EHLO client.test", "250 ", smtp=True)
    commands = ["AUTH", "AUTH PLAIN a b c", "AUTH XOAUTH2", f"AUTH PLAIN {plain()}",
                f"AUTH PLAIN {plain()}", "MAIL FROM:<bob@example.test>",
                f"MAIL FROM:<{ALICE}>", "RCPT TO:<nobody@example.test>",
                "RCPT TO:<someone@remote.test>", "RSET", "QUIT"]
    replies += [(c, client.transact(c, "", smtp=True)) for c in commands]
    unmarked = [(c, r) for c, r in replies if not ENHANCED.match(r) and r[:3] != "220"]
    assert unmarked == []


def test_auth_is_refused_inside_a_mail_transaction(connect, alice):
    client = connect()
    client.transact(f"MAIL FROM:<{ALICE}>", "250 2.1.0", smtp=True)
    client.transact(f"AUTH PLAIN {plain()}", "503 5.5.1", smtp=True)


# Who may send as whom --------------------------------------------------------------------

def test_a_spoofed_envelope_sender_is_refused(connect, alice, bob):
    client = connect()
    client.transact("MAIL FROM:<bob@example.test>", "553 5.7.1", smtp=True)
    client.transact("MAIL FROM:<someone@remote.test>", "553 5.7.1", smtp=True)
    client.transact("MAIL FROM:<>", "553 5.7.1", smtp=True)
    client.transact("MAIL FROM:<Alice@Example.TEST>", "250 2.1.0", smtp=True)


def test_a_spoofed_from_header_is_refused_and_nothing_is_sent(connect, alice, bob):
    client = connect()
    spoofed = BODY.replace(b"From: Alice <alice@example.test>", b"From: Bob <bob@example.test>")
    reply = send_data(client, spoofed, rcpts=("bob@example.test", "carol@remote.test"))
    assert reply.startswith("553 5.7.1")
    assert "bob@example.test" in reply
    assert inbox(bob) == []
    assert OutboundMessage.objects.count() == 0
    # A second address in From must be the user's too.
    both = BODY.replace(b"From: Alice <alice@example.test>",
                        b"From: alice@example.test, ceo@remote.test")
    assert send_data(client, both).startswith("553 5.7.1")
    nobody = BODY.replace(b"From: Alice <alice@example.test>", b"From: undisclosed:;")
    assert send_data(client, nobody).startswith("553 5.7.1")
    assert inbox(bob) == []
    assert send_data(client, BODY).startswith("250 2.0.0")  # the session goes on


def test_an_alias_of_the_user_may_be_used_as_sender(connect, alice, bob):
    directory.add_alias("sales@example.test", ["alice@example.test", "someone@remote.test"])
    client = connect()
    body = BODY.replace(b"From: Alice <alice@example.test>", b"From: Sales <sales@example.test>")
    assert send_data(client, body, mail_from="sales@example.test").startswith("250 2.0.0")
    [message] = inbox(bob)
    assert b"From: Sales <sales@example.test>" in raw_of(message)


def test_an_alias_for_someone_else_or_a_catch_all_may_not_be_used(connect, alice, bob):
    directory.add_alias("help@example.test", ["bob@example.test"])
    directory.add_alias("@example.test", ["alice@example.test"])
    client = connect()
    client.transact("MAIL FROM:<help@example.test>", "553 5.7.1", smtp=True)
    client.transact("MAIL FROM:<whoever@example.test>", "553 5.7.1", smtp=True)
    body = BODY.replace(b"From: Alice <alice@example.test>", b"From: whoever@example.test")
    assert send_data(client, body).startswith("553 5.7.1")


# Domains nobody has proven to own ----------------------------------------------------------

def _customer(name: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(name, f"{name}@customers.test", "pw")


@pytest.fixture
def bigbank(domain, alice):
    """A customer's unproven claim on bigbank.test with security@, beside their example.test."""
    owner = _customer("owner")
    Domain.objects.filter(pk=domain.pk).update(owner=owner)
    claim = directory.add_domain("bigbank.test", owner=owner, verified=False)
    directory.add_mailbox("security@bigbank.test", PASSWORD, domain=claim)
    return claim


def test_a_mailbox_of_an_unverified_domain_can_neither_log_in_nor_be_sent_as(
        connect, bigbank, alice, bob):
    client = connect(login=None)
    client.transact(f"AUTH PLAIN {plain('security@bigbank.test')}", "535 5.7.8", smtp=True)
    client = connect()  # alice@example.test, of the same customer
    reply = client.transact("MAIL FROM:<security@bigbank.test>", "550 5.7.1", smtp=True)
    assert "domain not verified" in reply
    forged = BODY.replace(b"From: Alice <alice@example.test>",
                          b"From: Security <security@bigbank.test>")
    reply = send_data(client, forged, rcpts=("bob@example.test", "friend@remote.test"))
    assert reply.startswith("550 5.7.1") and "domain not verified" in reply
    assert inbox(bob) == []
    assert OutboundMessage.objects.count() == 0


def test_a_refusal_never_tells_of_another_customers_claim(connect, domain, alice):
    claim = directory.add_domain("bigbank.test", owner=_customer("squatter"), verified=False)
    directory.add_mailbox("security@bigbank.test", PASSWORD, domain=claim)
    client = connect()
    claimed = client.transact("MAIL FROM:<security@bigbank.test>", "553 5.7.1", smtp=True)
    unclaimed = client.transact("MAIL FROM:<security@nobank.test>", "553 5.7.1", smtp=True)
    assert claimed.replace("bigbank", "X") == unclaimed.replace("nobank", "X")


# Delivery -----------------------------------------------------------------------------------

def test_local_recipients_have_the_message_once_250_is_sent(connect, alice, bob):
    client = connect()
    assert send_data(client, BODY).startswith("250 2.0.0")
    [message] = inbox(bob)
    raw = raw_of(message)
    headers = email.message_from_bytes(raw)
    assert raw.startswith(b"Return-Path: <alice@example.test>\r\n")
    assert headers["Message-ID"] and headers["Date"] and headers["DKIM-Signature"]
    assert "with ESMTPSA" in headers["Received"]
    assert "(authenticated as alice@example.test)" in headers["Received"]
    assert PASSWORD.encode() not in raw
    assert dkim_verifies(raw)
    assert OutboundMessage.objects.count() == 0
    assert Message.objects.get(pk=message.pk).message_id == headers["Message-ID"]


def test_the_senders_own_message_id_and_date_are_kept(connect, alice, bob):
    client = connect()
    body = (b"Message-ID: <mine@example.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            + BODY)
    assert send_data(client, body).startswith("250 2.0.0")
    headers = email.message_from_bytes(raw_of(inbox(bob)[0]))
    assert headers.get_all("Message-ID") == ["<mine@example.test>"]
    assert headers.get_all("Date") == ["Mon, 1 Jan 2024 10:00:00 +0000"]


def test_a_message_without_from_gets_the_envelope_sender(connect, alice, bob):
    client = connect()
    assert send_data(client, b"Subject: bare\r\n\r\nbody\r\n").startswith("250 2.0.0")
    raw = raw_of(inbox(bob)[0])
    assert email.message_from_bytes(raw)["From"] == "<alice@example.test>"
    assert dkim_verifies(raw)


def test_an_unknown_local_user_is_refused_at_rcpt(connect, alice):
    client = connect()
    client.transact(f"MAIL FROM:<{ALICE}>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<nobody@example.test>", "550 5.1.1", smtp=True)
    client.transact("RCPT TO:<not an address>", "5", smtp=True)


def test_a_remote_recipient_is_queued_then_delivered_signed(connect, alice, sink, kicked):
    client = connect()
    reply = send_data(client, BODY, rcpts=("carol@remote.test",))
    assert reply.startswith("250 2.0.0")
    [outbound] = OutboundMessage.objects.all()
    assert outbound.mail_from == ALICE
    assert outbound.sender_id == alice.pk
    assert [r.address for r in OutboundRecipient.objects.all()] == ["carol@remote.test"]
    assert kicked == [outbound.pk]
    assert Message.objects.count() == 0

    attempts.attempt([outbound.pk])
    [received] = sink.received
    assert (received.mail_from, received.rcpt_tos) == (ALICE, ["carol@remote.test"])
    headers = email.message_from_bytes(received.data)
    assert headers["Message-ID"] and headers["Date"]
    assert headers["DKIM-Signature"]
    assert "d=example.test" in headers["DKIM-Signature"].replace(" ", "")
    assert "Return-Path" not in headers
    assert dkim_verifies(received.data)
    assert OutboundRecipient.objects.get().state == OutboundRecipient.State.DELIVERED


def test_local_and_remote_recipients_in_one_message(connect, alice, bob, sink):
    client = connect()
    assert send_data(client, BODY, rcpts=("bob@example.test", "carol@remote.test")
                     ).startswith("250 2.0.0")
    local = raw_of(inbox(bob)[0])
    attempts.attempt([OutboundMessage.objects.get().pk])
    [received] = sink.received
    assert local == b"Return-Path: <alice@example.test>\r\n" + received.data
    assert dkim_verifies(local) and dkim_verifies(received.data)


def test_sending_as_an_alias_signs_with_the_alias_domain(connect, alice, sink):
    directory.add_domain("other.test")
    directory.add_alias("info@other.test", ["alice@example.test"])
    client = connect()
    body = BODY.replace(b"From: Alice <alice@example.test>", b"From: info@other.test")
    assert send_data(client, body, rcpts=("carol@remote.test",)).startswith("250 2.0.0")
    attempts.attempt([OutboundMessage.objects.get().pk])
    data = sink.received[0].data
    assert "d=other.test" in email.message_from_bytes(data)["DKIM-Signature"].replace(" ", "")
    assert dkim_verifies(data, "other.test")


def test_a_mail_loop_is_refused(settings, connect, alice, bob):
    settings.SMTP_MAX_RECEIVED_HEADERS = 3
    client = connect()
    hop = b"Received: from a.test by b.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    assert send_data(client, hop * 3 + BODY).startswith("554 5.4.6")
    assert inbox(bob) == []


# Limits -------------------------------------------------------------------------------------

def test_recipients_per_message_are_limited(connect, alice, bob):
    Mailbox.objects.filter(pk=alice.pk).update(max_recipients=2)
    client = connect()
    client.transact(f"MAIL FROM:<{ALICE}>", "250 2.1.0", smtp=True)
    client.transact("RCPT TO:<bob@example.test>", "250 2.1.5", smtp=True)
    client.transact("RCPT TO:<carol@remote.test>", "250 2.1.5", smtp=True)
    client.transact("RCPT TO:<dave@remote.test>", "452 4.5.3", smtp=True)
    client.transact("DATA", "354 ", smtp=True)
    client.send(BODY + b".\r\n")
    assert client.smtp_reply().startswith("250 2.0.0")
    assert list(OutboundRecipient.objects.values_list("address", flat=True)) == [
        "carol@remote.test"]


def test_zero_max_recipients_means_no_limit(settings, connect, alice):
    settings.SMTP_MAX_RECIPIENTS = 2  # the receiving side's limit does not apply here
    Mailbox.objects.filter(pk=alice.pk).update(max_recipients=0)
    client = connect()
    rcpts = tuple(f"r{n}@remote.test" for n in range(5))
    assert send_data(client, BODY, rcpts=rcpts).startswith("250 2.0.0")
    assert OutboundRecipient.objects.count() == 5


def test_messages_per_hour_are_limited(connect, alice, bob):
    Mailbox.objects.filter(pk=alice.pk).update(send_limit_per_hour=2)
    client = connect()
    assert send_data(client, BODY).startswith("250 2.0.0")
    assert send_data(client, BODY).startswith("250 2.0.0")
    reply = client.transact(f"MAIL FROM:<{ALICE}>", "450 4.7.1", smtp=True)
    assert "2 messages per hour" in reply
    assert len(inbox(bob)) == 2
    # Another session of the same mailbox counts against the same limit.
    connect().transact(f"MAIL FROM:<{ALICE}>", "450 4.7.1", smtp=True)


def test_sessions_sending_at_once_cannot_pass_the_hourly_limit_together(connect, alice, bob):
    # Both sessions pass MAIL FROM with room for one message left; only one may send it,
    # whichever node each session is on (the count lives in the shared cache).
    Mailbox.objects.filter(pk=alice.pk).update(send_limit_per_hour=1)
    first, second = connect(), connect()
    for client in (first, second):
        client.transact(f"MAIL FROM:<{ALICE}>", "250 ", smtp=True)
        client.transact("RCPT TO:<bob@example.test>", "250 ", smtp=True)
        client.transact("DATA", "354 ", smtp=True)
    first.send(BODY + b".\r\n")
    assert first.smtp_reply().startswith("250 2.0.0")
    second.send(BODY + b".\r\n")
    assert second.smtp_reply() == ("450 4.7.1 Sending limit of 1 messages per hour reached, "
                                   "try again later")
    assert len(inbox(bob)) == 1


def test_a_message_not_sent_does_not_count_against_the_hourly_limit(alice, bob):
    Mailbox.objects.filter(pk=alice.pk).update(send_limit_per_hour=1, quota_bytes=0)
    Mailbox.objects.filter(pk=bob.pk).update(quota_bytes=1)
    principal = Principal.of(Mailbox.objects.get(pk=alice.pk))
    with pytest.raises(QuotaExceeded):
        outgoing.submit(BODY, principal=principal, mail_from=ALICE, local_ids=[bob.pk],
                        remote=[], received=b"", return_path=b"")
    assert not outgoing.send_limit_reached(principal)


def test_zero_messages_per_hour_means_no_limit(connect, alice, bob):
    Mailbox.objects.filter(pk=alice.pk).update(send_limit_per_hour=0)
    client = connect()
    for _ in range(4):
        assert send_data(client, BODY).startswith("250 2.0.0")
    assert len(inbox(bob)) == 4


def test_refused_messages_do_not_count_against_the_hourly_limit(connect, alice, bob):
    Mailbox.objects.filter(pk=alice.pk).update(send_limit_per_hour=1)
    client = connect()
    spoofed = BODY.replace(b"Alice <alice@example.test>", b"bob@example.test")
    assert send_data(client, spoofed).startswith("553 5.7.1")
    assert send_data(client, BODY).startswith("250 2.0.0")
    client.transact(f"MAIL FROM:<{ALICE}>", "450 4.7.1", smtp=True)


# Interop ----------------------------------------------------------------------------------------

@pytest.mark.interop
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_swaks_submits_with_auth_plain(server, alice, bob, mode):
    swaks = require_program("swaks")
    port = server.port("submission" if mode == "starttls" else "submissions")
    tls = "--tls" if mode == "starttls" else "--tls-on-connect"
    result = subprocess.run(
        [swaks, "--server", "127.0.0.1", "--port", str(port), tls,
         "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
         "--from", ALICE, "--to", "bob@example.test", "--helo", "client.test",
         "--header", f"Subject: swaks {mode}", "--body", "Sent by swaks"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    [message] = inbox(bob)
    assert message.subject == f"swaks {mode}"
    raw = raw_of(message)
    assert b"with ESMTPSA" in raw
    assert dkim_verifies(raw)
