"""Stopping mailcore: sessions waiting for their client are told at once; only a command
in flight gets the grace period (SHUTDOWN_GRACE)."""

from __future__ import annotations

import asyncio
import concurrent.futures

from tests.conftest import PASSWORD
from tests.imap_client import ALICE, idle, selected
from tests.servers import RawClient

GRACE = 600  # seconds: far longer than the test, so anything before it ended is "at once"


def _stop(server) -> concurrent.futures.Future:
    """Start stopping the server with a long grace period; return the stop's future."""
    return asyncio.run_coroutine_threadsafe(server.server.stop(GRACE), server.loop)


def _smtp_in_data(server) -> RawClient:
    client = RawClient(server.port("smtp"))
    assert client.smtp_reply().startswith("220 ")
    client.transact("EHLO client.remote.test", "250", smtp=True)
    client.transact("MAIL FROM:<sender@remote.test>", "250", smtp=True)
    client.transact(f"RCPT TO:<{ALICE}>", "250", smtp=True)
    client.transact("DATA", "354", smtp=True)
    client.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    return client


def test_idle_sessions_are_told_at_once_and_a_command_in_flight_finishes(server, alice):
    in_flight = _smtp_in_data(server)
    idling = selected(server)
    idle(idling)
    between = selected(server)
    notifying = selected(server)  # waits for its next command in a task of its own
    notifying.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
    pop3 = RawClient(server.port("pop3"))
    assert pop3.line().startswith("+OK")
    pop3.transact(f"USER {ALICE}", "+OK")
    pop3.transact(f"PASS {PASSWORD}", "+OK")
    smtp = RawClient(server.port("submission"))
    assert smtp.smtp_reply().startswith("220 ")
    smtp.transact("EHLO client.test", "250", smtp=True)

    stopped = _stop(server)
    # Each waiting session hears it while the SMTP transfer still holds the server open:
    # long before the grace period ends.
    assert idling.response().startswith("* BYE ")
    assert idling.closed()
    assert between.response().startswith("* BYE ")
    assert between.closed()
    assert notifying.response().startswith("* BYE ")
    assert notifying.closed()
    assert pop3.line().startswith("-ERR ")
    assert pop3.closed()
    assert smtp.smtp_reply().startswith("421 4.3.2 ")
    assert smtp.closed()
    assert not stopped.done()

    # The message in flight is accepted; then its session, waiting again, is told too.
    in_flight.send(b"second half\r\n.\r\n")
    assert in_flight.smtp_reply().startswith("250 2.0.0 ")
    assert in_flight.smtp_reply().startswith("421 4.3.2 ")
    assert in_flight.closed()
    stopped.result(30)
