"""Hostile and broken input: big literals, long lines, nesting, garbage, timeouts, errors."""

from __future__ import annotations

import logging
import threading

import pytest

from mailcore.models import Message
from tests.imap_client import IMAPClient, close_all, connect, message, selected
from tests.servers import ServerThread


def test_a_synchronizing_literal_over_the_limit_is_refused_before_it_is_sent(server, alice):
    client = connect(server)
    client.send("a1 LOGIN {100000}")
    assert client.response() == "a1 BAD [TOOBIG] Literal too large"
    client.login()


def test_an_append_over_the_appendlimit_is_refused_with_toobig(server, alice, settings):
    settings.MESSAGE_SIZE_LIMIT = 1000
    client = connect(server, login=True)
    client.send("a1 APPEND INBOX (\\Seen) {1001}")
    assert client.response() == (
        "a1 NO [TOOBIG] Message larger than the APPENDLIMIT of 1000 octets")
    client.ok("NOOP")
    assert not Message.objects.exists()


def test_before_login_even_append_gets_only_small_literals(server, settings):
    settings.IMAP_MAX_LITERAL = 1000
    client = connect(server)
    client.send("a1 APPEND INBOX {5000}")
    assert client.response() == "a1 BAD [TOOBIG] Literal too large"


def test_multiappend_refused_midway_stores_nothing(server, alice, settings):
    settings.MESSAGE_SIZE_LIMIT = 1000
    client = connect(server, login=True)
    first = message(1)
    client.send(f"a1 APPEND INBOX {{{len(first)}+}}\r\n".encode() + first + b" {5000}\r\n")
    assert client.response() == (
        "a1 NO [TOOBIG] Message larger than the APPENDLIMIT of 1000 octets")
    assert not Message.objects.exists()


def test_a_non_synchronizing_literal_over_the_limit_is_read_and_discarded(server, alice,
                                                                           settings):
    settings.IMAP_MAX_LITERAL = 1000
    client = connect(server)
    client.send(b"a1 LOGIN {5000+}\r\n" + b"x" * 5000 + b" {3+}\r\nabc\r\n")
    assert client.response() == "a1 BAD [TOOBIG] Literal too large"
    client.login()


def test_a_non_synchronizing_literal_beyond_the_message_limit_closes_the_connection(
        server, alice, settings):
    settings.MESSAGE_SIZE_LIMIT = 10_000
    client = connect(server, login=True)
    client.send(b"a1 APPEND INBOX {20000+}\r\n" + b"x" * 100)
    assert client.response() == "* BYE [TOOBIG] Literal too large; closing connection"
    assert client.closed()


def test_the_whole_command_is_bounded(server, alice, settings):
    settings.IMAP_MAX_COMMAND = 2000
    client = connect(server)
    client.send(b"a1 LOGIN {1500+}\r\n" + b"u" * 1500 + b" {1500}\r\n")
    assert client.response() == "a1 BAD [TOOBIG] Command too large"


def test_an_overlong_line_is_refused_and_the_session_goes_on(server, alice, settings):
    client = connect(server)
    client.send(b"a1 NOOP " + b"x" * (settings.IMAP_MAX_LINE + 10) + b"\r\n")
    assert client.response() == "* BAD [TOOBIG] Line too long"
    assert client.run("NOOP") == ([], "OK NOOP completed")


@pytest.mark.parametrize("line,reply", [
    (b"a1 FROB", "a1 BAD Unknown command"),
    (b"a1 UID NOOP", "a1 BAD Unknown command"),
    (b"a1", "a1 BAD Syntax error: missing command name"),
    (b"(((", "* BAD Syntax error: "),
    (b"\x00\xff\xfe garbage", "* BAD Syntax error: "),
    (b"a1 LOGIN \"unterminated", "a1 BAD Syntax error: "),
    (b"a1 LOGIN a\x00b c", "a1 BAD Syntax error: "),
    (b"a1 SELECT", "a1 BAD Syntax error: missing argument"),
])
def test_malformed_commands_get_a_bad_answer(server, line, reply):
    client = connect(server)
    client.send(line + b"\r\n")
    assert client.response().startswith(reply)
    assert client.run("NOOP") == ([], "OK NOOP completed")


@pytest.mark.parametrize("command", [
    "FETCH 0 FLAGS", "FETCH 1:0 FLAGS", "FETCH 4294967296 FLAGS", "FETCH 1,,2 FLAGS",
    "FETCH 1:2:3 FLAGS", "FETCH a FLAGS", "FETCH -1 FLAGS", "STORE 1 +FLAGS (\\Seen",
    "FETCH 1 (BODY[1.0])", "FETCH 1 BODY[HEADER.FIELDS ()]", "COPY 1",
    "SEARCH " + "NOT " * 200 + "ALL", "SEARCH " + "(" * 101 + "ALL" + ")" * 101,
    "FETCH 1 " + "(FLAGS " * 11 + ")" * 11,
])
def test_bad_sequence_sets_and_deep_nesting_are_bad(server, alice, command):
    client = selected(server)
    assert client.run(command)[1].startswith("BAD ")
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_too_many_errors_end_the_session(server):
    client = connect(server)
    for _ in range(19):
        client.run("FROB")
    client.send("a20 FROB")
    assert client.response() == "a20 BAD Unknown command"
    assert client.response() == "* BYE Too many errors; closing connection"
    assert client.closed()


def test_an_idle_client_is_logged_out(server, settings):
    settings.IMAP_PREAUTH_TIMEOUT = 0.3
    client = connect(server)
    assert client.response() == "* BYE Autologout; idle for too long"
    assert client.closed()


def test_a_stalled_literal_times_out(server, alice, settings):
    settings.IMAP_TIMEOUT = 0.3
    client = connect(server, login=True)
    client.send(b"a1 APPEND INBOX {100+}\r\nonly a little")
    assert client.response() == "* BYE Autologout; idle for too long"


def test_a_peer_hanging_up_mid_command_is_not_an_error(server, alice, caplog):
    caplog.set_level(logging.INFO, logger="mailcore.session")
    client = connect(server, login=True)
    client.send(b"a1 APPEND INBOX {100+}\r\nhalf")
    client.close()
    client.sock.close()
    for _ in range(50):
        if any("connection lost" in r.getMessage() or "peer closed" in r.getMessage()
               for r in caplog.records):
            break
        threading.Event().wait(0.05)
    assert any(r.levelno == logging.INFO and "IncompleteReadError" in r.getMessage()
               for r in caplog.records)


@pytest.mark.allow_internal_errors
def test_an_internal_error_is_logged_and_answered_with_the_session_id(server, alice,
                                                                     monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("secret details")

    monkeypatch.setattr("mailcore.store.folders.folder_status", broken)
    client = connect(server, login=True)
    _, done = client.run("STATUS INBOX (MESSAGES)")
    assert done.startswith("NO [UNAVAILABLE] Temporary failure; try again later (session ")
    assert "secret" not in done
    session_id = done.rsplit(" ", 1)[1].rstrip(")")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and session_id in errors[0].getMessage()
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_shutdown_says_bye_to_open_sessions(transactional_db, alice):
    server = ServerThread().start()
    client = IMAPClient(server.port("imap"))
    client.login()
    client.ok("SELECT INBOX")
    client.send("i1 IDLE")
    assert client.response() == "+ idling"
    server.stop()
    assert client.response() == "* BYE [UNAVAILABLE] Server shutting down"
    assert client.closed()
    close_all()


TOKENS = ["1", "1:*", "*", "$", "0", "4294967295", "1,2:3", "(", ")", "()", "((", "\"x\"",
          "\"\"", "NIL", "INBOX", "Trash", "FLAGS", "(\\Seen)", "+FLAGS", "BODY[]",
          "BODY.PEEK[1.MIME]", "BINARY[1]", "<0.5>", "(UID FLAGS)", "ALL", "NOT", "OR",
          "UNSEEN", "CHARSET", "UTF-8", "RETURN", "(MIN)", "{3+}\r\nabc", "~{2+}\r\n\x00\x01",
          "(CHANGEDSINCE 1)", "(UNCHANGEDSINCE 1)", "(QRESYNC (1 1))", "\\Deleted", "%",
          "UID", "HEADER", "Subject", "1-Jan-2024", "\"01-Jan-2024 00:00:00 +0000\"",
          "\xff", "é", "\\", "]", "[", "{", "}"]
VERBS = ["FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH", "UID SEARCH", "COPY",
         "MOVE", "UID EXPUNGE", "EXPUNGE", "SELECT", "EXAMINE", "STATUS", "LIST", "LSUB",
         "APPEND", "CREATE", "RENAME", "DELETE", "ENABLE", "GETQUOTAROOT", "ID", "NOOP"]


def test_token_soup_never_breaks_the_server(server, alice):
    import random

    from mailcore.store.delivery import deliver

    for n in range(3):
        deliver(message(n), "s@remote.test", [alice.pk])
    rng = random.Random(7)
    client = None
    for n in range(300):
        if n % 12 == 0:
            client = selected(server)
        words = [rng.choice(VERBS)] + [rng.choice(TOKENS) for _ in range(rng.randint(0, 5))]
        command = " ".join(words).encode("utf-8")
        _, done = client.run(command)
        assert done.split(" ", 1)[0] in ("OK", "NO", "BAD"), (command, done)
