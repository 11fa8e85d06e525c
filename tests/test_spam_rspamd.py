"""Debian's Rspamd from the test configuration: it accepts real ham and rejects GTUBE."""

from __future__ import annotations

from tests.conftest import REMOTE_IP
from tests.rspamd_server import GTUBE, RspamdServer

HAM = (
    b"From: Bob <bob@remote.test>\r\nTo: alice@example.test\r\n"
    b"Subject: Lunch on Thursday\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <lunch.1@remote.test>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Hi Alice,\r\n\r\nare we still on for lunch on Thursday? The new place near the\r\n"
    b"station has a good soup of the day. Let me know what time suits you.\r\n\r\nBob\r\n"
)
ENVELOPE = {"From": "bob@remote.test", "Rcpt": "alice@example.test", "IP": REMOTE_IP,
            "Helo": "mail.remote.test", "Hostname": "mail.remote.test"}


def spam(text: str = GTUBE) -> bytes:
    return (b"From: win@prizes.test\r\nTo: alice@example.test\r\nSubject: You won\r\n\r\n"
            + text.encode() + b"\r\n")


def test_the_test_instance_accepts_a_real_ham_message(rspamd: RspamdServer) -> None:
    result = rspamd.check(HAM, **ENVELOPE)
    assert result["action"] == "no action", result


def test_the_test_instance_rejects_gtube(rspamd: RspamdServer) -> None:
    result = rspamd.check(spam(), **ENVELOPE)
    assert result["action"] == "reject", result
