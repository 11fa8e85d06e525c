"""The first whole path: mail for a hosted address arrives over SMTP and leaves over POP3."""

from __future__ import annotations

import poplib
import smtplib

from tests.conftest import PASSWORD


def test_a_message_sent_over_smtp_is_downloaded_over_pop3(server, alice):
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as smtp:
        smtp.sendmail("sender@remote.test", ["alice@example.test"],
                      b"Subject: hello\r\n\r\nHi Alice\r\n")
    pop = poplib.POP3("127.0.0.1", server.port("pop3"))
    pop.user("alice@example.test")
    pop.pass_(PASSWORD)
    _, lines, _ = pop.retr(1)
    pop.quit()
    assert b"Subject: hello" in lines
    assert b"Hi Alice" in lines
    assert lines[0] == b"Return-Path: <sender@remote.test>"
