"""The POP3 server over real sockets (RFC 1939, 2449, 2595, 5034): raw replies and poplib."""

from __future__ import annotations

import base64
import poplib
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from mailcore import directory
from mailcore.models import Expunged, Mailbox, Message
from mailcore.pop3 import replies
from mailcore.pop3.session import COMMANDS, MAX_ERRORS, State
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from tests.conftest import PASSWORD
from tests.servers import RawClient, client_tls_context
from tests.waiting import wait_until

ALICE = "alice@example.test"

# Lines that begin with a dot, a line that is only a dot, 8-bit bytes: all must come back
# exactly as stored.
DOTTY = (b"Return-Path: <sender@remote.test>\r\n"
         b"From: Sender <sender@remote.test>\r\n"
         b"To: alice@example.test\r\n"
         b"Subject: dots\r\n"
         b"\r\n"
         b".leading dot\r\n"
         b"..two dots\r\n"
         b".\r\n"
         b"middle . dot\r\n"
         b"caf\xc3\xa9 and \xff\xfe raw bytes\r\n"
         b"\r\n"
         b"last line\r\n")


def message(n: int) -> bytes:
    return f"From: sender@remote.test\r\nSubject: message {n}\r\n\r\nBody {n}\r\n".encode()


def deliver_to(mailbox: Mailbox, raw: bytes) -> int:
    """Store raw in the mailbox's INBOX; return the message id."""
    return deliver(raw, "sender@remote.test", [mailbox.pk]).message_ids[0]


def plain(authzid: str, user: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def connect(server, port: str = "pop3", source: str = "") -> RawClient:
    client = RawClient(server.port(port), tls=port == "pop3s", source=source)
    assert client.line().startswith("+OK ")
    return client


def logged_in(server, user: str = ALICE, password: str = PASSWORD) -> RawClient:
    client = connect(server)
    client.transact(f"USER {user}", "+OK")
    client.transact(f"PASS {password}", "+OK Logged in")
    return client


def pop(server) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    client.user(ALICE)
    client.pass_(PASSWORD)
    return client


def read_body(client: RawClient) -> bytes:
    """Read a multi-line response's body as bytes, undoing dot-stuffing."""
    lines = []
    while True:
        while b"\r\n" not in client.buffer:
            chunk = client.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {client.buffer!r}")
            client.buffer += chunk
        line, _, client.buffer = client.buffer.partition(b"\r\n")
        if line == b".":
            return b"".join(lines)
        lines.append((line[1:] if line.startswith(b".") else line) + b"\r\n")


def read_wire(client: RawClient) -> bytes:
    """Read a multi-line response's body exactly as sent, up to and including the dot."""
    while b"\r\n.\r\n" not in client.buffer:
        chunk = client.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed; pending {client.buffer!r}")
        client.buffer += chunk
    wire, _, client.buffer = client.buffer.partition(b"\r\n.\r\n")
    return wire + b"\r\n.\r\n"


def capabilities(client: RawClient) -> list[str]:
    client.transact("CAPA", "+OK")
    return client.multiline()


# Logging in ---------------------------------------------------------------------------------

def test_user_and_pass_open_the_maildrop(server, alice):
    deliver_to(alice, message(1))
    client = pop(server)
    assert client.stat() == (1, len(message(1)))
    assert client.quit().startswith(b"+OK")


def test_auth_plain_with_an_initial_response_logs_in(server, alice):
    client = connect(server)
    client.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", "+OK Logged in, 0 messages")
    client.transact("STAT", "+OK 0 0")


def test_auth_plain_with_a_continuation_logs_in(server, alice):
    client = connect(server)
    client.send("AUTH PLAIN")
    assert client.line() == "+ "
    client.transact(plain("", ALICE, PASSWORD), "+OK Logged in")


def test_auth_plain_accepts_the_users_own_authorization_identity(server, alice):
    client = connect(server)
    client.transact(f"AUTH PLAIN {plain(ALICE, ALICE, PASSWORD)}", "+OK Logged in")


def test_auth_plain_refuses_to_act_as_another_user(server, alice, bob):
    client = connect(server)
    client.transact(f"AUTH PLAIN {plain('bob@example.test', ALICE, PASSWORD)}",
                    replies.AUTH_FAILED)


def test_auth_cancelled_with_a_star_leaves_the_client_unauthenticated(server, alice):
    client = connect(server)
    client.send("AUTH PLAIN")
    assert client.line() == "+ "
    client.transact("*", replies.AUTH_CANCELLED)
    client.transact("STAT", replies.WRONG_STATE)
    client.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", "+OK Logged in")


def test_auth_refuses_unknown_mechanisms_and_bad_base64(server, alice):
    client = connect(server)
    client.transact("AUTH CRAM-MD5", replies.UNSUPPORTED_MECHANISM)
    client.transact("AUTH PLAIN !!!notbase64", "-ERR Syntax error")
    client.transact(f"AUTH PLAIN {base64.b64encode(b'no-nuls').decode()}", "-ERR Syntax error")
    client.send("AUTH")
    assert client.line().startswith("+OK")
    assert client.multiline() == ["PLAIN"]


def test_pass_keeps_spaces_at_either_end_of_the_password(server, domain):
    directory.add_mailbox("carol@example.test", "  spaced out  ")
    client = connect(server)
    client.transact("USER carol@example.test", "+OK")
    client.transact("PASS   spaced out  ", "+OK Logged in")


def test_pass_without_user_is_refused(server, alice):
    client = connect(server)
    client.transact(f"PASS {PASSWORD}", replies.USER_FIRST)


def test_bad_credentials_get_an_auth_response_code(server, alice):
    client = connect(server)
    client.transact(f"USER {ALICE}", "+OK")
    client.transact("PASS wrong", replies.AUTH_FAILED)
    client.transact("USER nobody@example.test", "+OK")
    client.transact(f"PASS {PASSWORD}", replies.AUTH_FAILED)
    client.transact(f"AUTH PLAIN {plain('', ALICE, 'wrong')}", replies.TOO_MANY_FAILURES)
    assert client.closed()


def test_a_failed_login_is_answered_only_after_the_failure_delay(server, alice, settings):
    settings.AUTH_FAILURE_DELAY = 0.3
    client = connect(server)
    client.transact(f"USER {ALICE}", "+OK")
    started = time.monotonic()
    client.transact("PASS wrong", replies.AUTH_FAILED)
    assert time.monotonic() - started >= 0.3


def test_after_too_many_failures_even_the_right_password_is_refused(server, alice, settings):
    settings.AUTH_MAX_FAILURES = 2
    settings.AUTH_FAILURE_WINDOW = 1
    client = connect(server)
    for _ in range(2):
        client.transact(f"USER {ALICE}", "+OK")
        client.transact("PASS wrong", replies.AUTH_FAILED)
    client.close()
    client = connect(server)
    client.transact(f"USER {ALICE}", "+OK")
    client.transact(f"PASS {PASSWORD}", replies.AUTH_RATE_LIMITED)
    time.sleep(1.2)  # the failure window passes
    client = connect(server)
    client.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", "+OK Logged in")


def test_failures_are_limited_per_client_address(server, alice, bob, settings):
    settings.AUTH_MAX_FAILURES = 2
    client = connect(server)
    for _ in range(2):
        client.transact(f"USER {ALICE}", "+OK")
        client.transact("PASS wrong", replies.AUTH_FAILED)
    client.transact("USER bob@example.test", "+OK")
    client.transact(f"PASS {PASSWORD}", replies.AUTH_RATE_LIMITED)


def test_failures_for_a_user_from_other_addresses_do_not_refuse_the_user(server, alice,
                                                                         settings):
    settings.AUTH_MAX_FAILURES = 2
    for n in range(5):
        with pytest.raises(directory.LoginRefused):
            directory.log_in(ALICE, "wrong", f"192.0.2.{n + 1}")
    client = connect(server)
    client.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", "+OK Logged in")


def test_failures_from_one_address_refuse_only_that_address(server, alice, bob, settings):
    # The decoy scenario: guesses for alice and for names that do not exist, from
    # one address (127.0.0.2), refuse that address, not alice from anywhere else.
    settings.AUTH_MAX_FAILURES = 3
    for user in (ALICE, ALICE, ALICE, "decoy1@example.test", "decoy2@example.test"):
        client = connect(server, source="127.0.0.2")
        client.transact(f"USER {user}", "+OK")
        client.transact("PASS wrong", "-ERR")
        client.close()
    client = connect(server, source="127.0.0.2")
    client.transact("USER bob@example.test", "+OK")
    client.transact(f"PASS {PASSWORD}", replies.AUTH_RATE_LIMITED)
    client = connect(server, source="127.0.0.3")
    client.transact(f"USER {ALICE}", "+OK")
    client.transact(f"PASS {PASSWORD}", "+OK Logged in")


# TLS ----------------------------------------------------------------------------------------

def test_stls_upgrades_the_connection_and_login_works_over_it(server, alice):
    deliver_to(alice, message(1))
    client = poplib.POP3("localhost", server.port("pop3"), timeout=10)
    assert "STLS" in client.capa()
    client.stls(client_tls_context())
    assert "STLS" not in client.capa()
    client.user(ALICE)
    client.pass_(PASSWORD)
    assert client.stat()[0] == 1
    client.quit()


def test_pop3s_speaks_tls_from_the_first_byte(server, alice):
    client = poplib.POP3_SSL("localhost", server.port("pop3s"), context=client_tls_context(),
                             timeout=10)
    assert "STLS" not in client.capa()
    client.user(ALICE)
    client.pass_(PASSWORD)
    assert client.stat() == (0, 0)
    client.quit()


def test_stls_is_refused_once_tls_is_in_use(server):
    client = connect(server, "pop3s")
    client.transact("STLS", replies.ALREADY_TLS)
    client = connect(server)
    client.transact("STLS", replies.STLS_OK)
    client.starttls()
    client.transact("STLS", replies.ALREADY_TLS)


def test_stls_with_pipelined_plaintext_after_it_disconnects(server, alice):
    client = connect(server)
    client.send(f"STLS\r\nUSER {ALICE}\r\nPASS {PASSWORD}\r\n".encode())
    assert client.line() == replies.PIPELINED_STLS
    assert client.closed()
    connect(server).transact("NOOP", replies.WRONG_STATE)  # the server is still up


def test_plaintext_after_stls_is_never_read_as_a_command(server, alice):
    client = connect(server)
    client.transact("STLS", replies.STLS_OK)
    client.send(f"USER {ALICE}\r\nPASS {PASSWORD}\r\n".encode())
    assert client.closed()
    assert Mailbox.objects.get(pk=alice.pk).pop3_lock == ""


def test_stls_forgets_a_user_named_before_it(server, alice):
    client = connect(server)
    client.transact(f"USER {ALICE}", "+OK")
    client.transact("STLS", replies.STLS_OK)
    client.starttls()
    client.transact(f"PASS {PASSWORD}", replies.USER_FIRST)


def test_with_plaintext_never_passwords_wait_for_tls(server, alice, settings):
    settings.PLAINTEXT_AUTH = "never"
    client = connect(server)
    caps = capabilities(client)
    assert "STLS" in caps
    assert "USER" not in caps and not any(c.startswith("SASL") for c in caps)
    client.transact(f"USER {ALICE}", replies.PLAINTEXT_DISALLOWED)
    client.transact(f"PASS {PASSWORD}", replies.PLAINTEXT_DISALLOWED)
    client.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", replies.PLAINTEXT_DISALLOWED)
    client.transact("STLS", replies.STLS_OK)
    client.starttls()
    caps = capabilities(client)
    assert "USER" in caps and "SASL PLAIN" in caps and "STLS" not in caps
    client.transact(f"USER {ALICE}", "+OK")
    client.transact(f"PASS {PASSWORD}", "+OK Logged in")


def test_with_plaintext_never_auth_plain_works_on_pop3s(server, alice, settings):
    settings.PLAINTEXT_AUTH = "never"
    client = connect(server, "pop3s")
    client.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", "+OK Logged in")


@pytest.mark.parametrize(("policy", "secure", "peer", "allowed"), [
    ("never", False, "127.0.0.1", False),
    ("never", True, "192.0.2.1", True),
    ("loopback", False, "127.0.0.1", True),
    ("loopback", False, "::1", True),
    ("loopback", False, "192.0.2.1", False),
    ("loopback", False, "not-an-ip", False),
    ("always", False, "192.0.2.1", True),
])
def test_plaintext_passwords_follow_the_setting(settings, policy, secure, peer, allowed):
    settings.PLAINTEXT_AUTH = policy
    assert directory.plaintext_allowed(secure, peer) is allowed


# CAPA and the state table -------------------------------------------------------------------

def test_capa_lists_response_codes_and_login_methods(server, alice):
    client = connect(server)
    caps = capabilities(client)
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "USER", "SASL PLAIN", "STLS"):
        assert cap in caps
    client.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", "+OK")
    caps = capabilities(client)
    assert "RESP-CODES" in caps and "USER" not in caps and "STLS" not in caps


# A plausible argument per verb, so only the state decides whether it is accepted.
ARGS = {"USER": ALICE, "PASS": PASSWORD, "AUTH": "PLAIN", "RETR": "1", "TOP": "1 0",
        "DELE": "1", "LIST": "1", "UIDL": "1"}


def _in_state(server, state: State) -> RawClient:
    return connect(server) if state is State.AUTHORIZATION else logged_in(server)


def test_every_verb_is_refused_outside_its_states(server, alice):
    deliver_to(alice, message(1))
    for state in State:
        client = _in_state(server, state)
        for verb, command in COMMANDS.items():
            if state not in command.states:
                client.transact(f"{verb} {ARGS.get(verb, '')}".strip(), replies.WRONG_STATE)
        client.transact("STAT" if state is State.TRANSACTION else "CAPA", "+OK")
        client.close()


def test_every_verb_is_accepted_in_its_states(server, alice):
    deliver_to(alice, message(1))
    for verb, command in COMMANDS.items():
        for state in command.states:
            client = _in_state(server, state)
            client.send(f"{verb} {ARGS.get(verb, '')}".strip())
            assert client.line() != replies.WRONG_STATE, (verb, state)
            client.close()


def test_unknown_verbs_are_errors_in_every_state(server, alice):
    for state in State:
        client = _in_state(server, state)
        client.transact("XYZZY", replies.UNKNOWN_COMMAND)
        client.transact("", replies.UNKNOWN_COMMAND)
        client.transact("APOP alice 0123456789abcdef0123456789abcdef", replies.UNKNOWN_COMMAND)


def test_verbs_are_case_insensitive(server, alice):
    client = connect(server)
    client.transact(f"user {ALICE}", "+OK")
    client.transact(f"pAsS {PASSWORD}", "+OK Logged in")
    client.transact("stat", "+OK 0 0")


# The transaction state ----------------------------------------------------------------------

def test_stat_list_and_uidl_describe_the_maildrop(server, alice):
    ids = [deliver_to(alice, message(n)) for n in (1, 2)]
    uids = dict(Message.objects.filter(pk__in=ids).values_list("pk", "uid"))
    validity = alice.folders.get(name="INBOX").uidvalidity
    size = len(message(1))
    client = logged_in(server)
    client.transact("STAT", f"+OK 2 {2 * size}")
    client.transact("LIST", "+OK")
    assert client.multiline() == [f"1 {size}", f"2 {size}"]
    client.transact("LIST 2", f"+OK 2 {size}")
    client.transact("UIDL", "+OK")
    assert client.multiline() == [f"{n} {validity}.{uids[i]}" for n, i in enumerate(ids, 1)]
    client.transact("UIDL 1", f"+OK 1 {validity}.{uids[ids[0]]}")
    client.transact("NOOP", "+OK")


def test_an_empty_maildrop_lists_nothing(server, alice):
    client = logged_in(server)
    client.transact("LIST", "+OK 0 messages")
    assert client.multiline() == []
    client.transact("UIDL", "+OK")
    assert client.multiline() == []
    client.transact("RETR 1", replies.NO_SUCH_MESSAGE)


def test_retr_returns_the_stored_message_byte_for_byte(server, alice):
    message_id = deliver_to(alice, DOTTY)
    stored = blob_store().get(Message.objects.get(pk=message_id).blob_id)
    assert stored == DOTTY
    client = logged_in(server)
    client.transact("RETR 1", f"+OK {len(DOTTY)} octets")
    assert read_body(client) == stored


def test_retr_dot_stuffs_lines_that_begin_with_a_dot(server, alice):
    deliver_to(alice, DOTTY)
    client = logged_in(server)
    client.transact("RETR 1", "+OK")
    wire = read_wire(client)
    assert b"\r\n..leading dot\r\n...two dots\r\n..\r\nmiddle . dot\r\n" in wire
    assert wire.endswith(b"last line\r\n.\r\n")


def test_poplib_round_trips_a_dotty_message(server, alice):
    deliver_to(alice, DOTTY)
    client = pop(server)
    _, lines, octets = client.retr(1)
    client.quit()
    assert b"\r\n".join(lines) + b"\r\n" == DOTTY


def test_a_large_message_round_trips_byte_for_byte(server, alice):
    line = b".dotted and long " + b"x" * 60 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * 40_000  # about 3 MB, well over one send chunk
    deliver_to(alice, big)
    client = logged_in(server)
    client.transact("RETR 1", f"+OK {len(big)} octets")
    assert read_body(client) == big
    client.transact("QUIT", "+OK")


def test_top_zero_gives_the_header_and_the_blank_line_only(server, alice):
    deliver_to(alice, DOTTY)
    client = logged_in(server)
    client.transact("TOP 1 0", replies.TOP)
    assert read_body(client) == DOTTY.split(b"\r\n\r\n")[0] + b"\r\n\r\n"


def test_top_gives_the_first_body_lines_dot_stuffed(server, alice):
    deliver_to(alice, DOTTY)
    client = logged_in(server)
    client.transact("TOP 1 3", replies.TOP)
    wire = read_wire(client)
    assert wire.endswith(b"\r\n\r\n..leading dot\r\n...two dots\r\n..\r\n.\r\n")


def test_top_with_more_lines_than_the_body_has_gives_the_whole_message(server, alice):
    deliver_to(alice, DOTTY)
    deliver_to(alice, b"Subject: no body\r\n")
    client = logged_in(server)
    client.transact("TOP 1 1000", replies.TOP)
    assert read_body(client) == DOTTY
    client.transact("TOP 2 5", replies.TOP)
    assert read_body(client) == b"Subject: no body\r\n"


def test_a_message_without_a_final_line_end_is_still_terminated(server, alice):
    deliver_to(alice, b"Subject: x\r\n\r\nno newline at the end")
    client = logged_in(server)
    client.transact("RETR 1", "+OK")
    assert read_body(client) == b"Subject: x\r\n\r\nno newline at the end\r\n"
    client.transact("NOOP", "+OK")


def test_uidl_is_stable_across_sessions_and_deletions(server, alice):
    for n in (1, 2, 3):
        deliver_to(alice, message(n))
    client = pop(server)
    first = client.uidl()[1]
    client.dele(1)
    client.quit()
    client = pop(server)
    second = client.uidl()[1]
    client.quit()
    assert [line.split()[1] for line in second] == [line.split()[1] for line in first[1:]]
    deliver_to(alice, message(4))
    client = pop(server)
    third = client.uidl()[1]
    client.quit()
    assert [line.split()[1] for line in third[:2]] == [line.split()[1] for line in first[1:]]
    assert len({line.split()[1] for line in first + third}) == 4


def test_a_session_sees_the_maildrop_as_it_was_at_login(server, alice):
    deliver_to(alice, message(1))
    client = logged_in(server)
    deliver_to(alice, message(2))
    client.transact("STAT", f"+OK 1 {len(message(1))}")
    client.transact("RETR 2", replies.NO_SUCH_MESSAGE)


# Deleting -----------------------------------------------------------------------------------

def test_dele_hides_a_message_for_the_rest_of_the_session(server, alice):
    for n in (1, 2):
        deliver_to(alice, message(n))
    size = len(message(1))
    client = logged_in(server)
    client.transact("DELE 1", "+OK Message 1 deleted")
    client.transact("DELE 1", "-ERR Message 1 already deleted")
    client.transact("RETR 1", "-ERR Message 1 already deleted")
    client.transact("STAT", f"+OK 1 {size}")
    client.transact("LIST", "+OK 1 messages")
    assert client.multiline() == [f"2 {size}"]
    client.transact("UIDL", "+OK")
    assert [line.split()[0] for line in client.multiline()] == ["2"]
    client.transact("RSET", f"+OK Maildrop has 2 messages ({2 * size} octets)")
    client.transact("STAT", f"+OK 2 {2 * size}")


def test_quit_deletes_marked_messages_leaving_tombstones(server, alice):
    kept, doomed = deliver_to(alice, message(1)), deliver_to(alice, message(2))
    uid = Message.objects.get(pk=doomed).uid
    used = Mailbox.objects.get(pk=alice.pk).used_bytes
    assert alice.pop3_policy == Mailbox.Pop3Policy.DELETE  # the default
    client = pop(server)
    client.dele(2)
    assert client.quit().startswith(b"+OK")
    assert list(Message.objects.filter(folder__mailbox=alice).values_list("pk", flat=True)) \
        == [kept]
    assert Expunged.objects.filter(folder__mailbox=alice, uid=uid).exists()
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == used - len(message(2))
    assert Mailbox.objects.get(pk=alice.pk).pop3_lock == ""


def test_rset_then_quit_deletes_nothing(server, alice):
    deliver_to(alice, message(1))
    client = pop(server)
    client.dele(1)
    client.rset()
    client.quit()
    assert Message.objects.filter(folder__mailbox=alice).count() == 1


def test_a_dropped_connection_deletes_nothing_and_frees_the_maildrop(server, alice):
    deliver_to(alice, message(1))
    client = logged_in(server)
    client.transact("DELE 1", "+OK")
    client.close()
    again = pop(server)  # logs in at once: the lock went with the connection
    assert again.stat()[0] == 1
    again.quit()
    assert Message.objects.filter(folder__mailbox=alice).count() == 1
    assert not Expunged.objects.filter(folder__mailbox=alice).exists()


def test_keep_policy_marks_deleted_messages_seen_and_hides_them(server, alice):
    directory.set_pop3_policy(alice, Mailbox.Pop3Policy.KEEP)
    first, second = deliver_to(alice, message(1)), deliver_to(alice, message(2))
    used = Mailbox.objects.get(pk=alice.pk).used_bytes
    client = pop(server)
    second_uidl = client.uidl(2).split()[2]
    client.dele(1)
    client.quit()
    kept = Message.objects.get(pk=first)
    assert kept.seen and kept.pop3_hidden
    untouched = Message.objects.get(pk=second)
    assert not untouched.seen and not untouched.pop3_hidden
    assert Mailbox.objects.get(pk=alice.pk).used_bytes == used
    assert not Expunged.objects.filter(folder__mailbox=alice).exists()
    client = pop(server)
    assert client.stat() == (1, len(message(2)))
    assert client.uidl(1).split()[2] == second_uidl
    client.quit()


def test_a_second_session_gets_in_use(server, alice):
    first = logged_in(server)
    second = connect(server)
    second.transact(f"USER {ALICE}", "+OK")
    second.transact(f"PASS {PASSWORD}", replies.IN_USE)
    second.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", replies.IN_USE)
    first.transact("QUIT", "+OK")
    assert first.closed()
    second.transact(f"AUTH PLAIN {plain('', ALICE, PASSWORD)}", "+OK Logged in")


def test_quit_deletes_nothing_if_another_session_took_over_the_lock(server, alice):
    deliver_to(alice, message(1))
    client = logged_in(server)
    client.transact("DELE 1", "+OK")
    # This session's lock lapsed and another session took the maildrop.
    Mailbox.objects.filter(pk=alice.pk).update(
        pop3_lock="other", pop3_lock_until=timezone.now() + timedelta(minutes=5))
    client.transact("QUIT", replies.LOCK_LOST)
    assert client.closed()
    assert Message.objects.filter(folder__mailbox=alice).count() == 1
    assert Mailbox.objects.get(pk=alice.pk).pop3_lock == "other"


def test_quit_in_authorization_just_says_goodbye(server):
    client = connect(server)
    client.transact("QUIT", "+OK")
    assert client.closed()


# Hostile input ------------------------------------------------------------------------------

def test_bad_message_numbers_are_refused(server, alice):
    deliver_to(alice, message(1))
    for command in ("RETR", "DELE", "LIST", "UIDL", "TOP"):
        client = logged_in(server)
        suffix = " 0" if command == "TOP" else ""
        for missing in ("0", "2", "99999", "9" * 500):
            client.transact(f"{command} {missing}{suffix}", replies.NO_SUCH_MESSAGE)
        for bad in ("-1", "abc", "1.5", "+1", "\u00b2", "\u0661", "0x1"):
            client.transact(f"{command} {bad}{suffix}", "-ERR Syntax error")
        client.transact("STAT", "+OK 1")
        client.transact("QUIT", "+OK")
    assert Message.objects.filter(folder__mailbox=alice).count() == 1


def test_top_needs_two_numbers(server, alice):
    deliver_to(alice, message(1))
    client = logged_in(server)
    for bad in ("TOP", "TOP 1", "TOP 1 -1", "TOP 1 x", "TOP 1 2 3", "TOP 1 \u00b2"):
        client.transact(bad, "-ERR Syntax error: TOP msg n")


@pytest.mark.parametrize("length", [2_000, 200_000])
def test_an_overlong_line_is_refused_and_the_session_goes_on(server, alice, length):
    client = logged_in(server)
    client.send(b"NOOP " + b"x" * length + b"\r\n")
    assert client.line() == replies.LINE_TOO_LONG
    client.transact("STAT", "+OK 0 0")


def test_nul_bytes_and_invalid_utf8_are_refused(server, alice):
    client = connect(server)
    client.send(b"USER al\0ice@example.test\r\n")
    assert client.line() == "-ERR Syntax error: NUL in command"
    client.send(b"USER \xff\xfe\xc3\r\n")
    assert client.line() == "-ERR Syntax error: invalid UTF-8"
    client.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n")  # a stray TLS hello
    assert client.line().startswith("-ERR")
    client.transact(f"USER {ALICE}", "+OK")
    client.transact(f"PASS {PASSWORD}", "+OK Logged in")


def test_a_bare_lf_ends_a_command_line(server, alice):
    client = connect(server)
    client.send(f"USER {ALICE}\n".encode())
    assert client.line() == replies.USER_OK


def test_too_many_errors_end_the_session_but_not_the_server(server, alice):
    client = connect(server)
    for _ in range(MAX_ERRORS - 1):
        client.transact("GARBAGE \x01\x02", replies.UNKNOWN_COMMAND)
    client.send("GARBAGE")
    assert client.line() == replies.UNKNOWN_COMMAND
    assert client.line() == replies.TOO_MANY_ERRORS
    assert client.closed()
    logged_in(server).transact("QUIT", "+OK")


def test_a_flood_of_garbage_does_not_take_the_server_down(server, alice):
    client = connect(server)
    client.send(bytes(range(256)) * 64 + b"\r\n" + b"\x00\xff\r\n" * 40)
    assert client.closed()
    logged_in(server).transact("QUIT", "+OK")


def test_a_client_that_hangs_up_mid_auth_frees_nothing_it_did_not_hold(server, alice):
    client = connect(server)
    client.send("AUTH PLAIN")
    assert client.line() == "+ "
    client.close()
    logged_in(server).transact("QUIT", "+OK")


# Timeouts -----------------------------------------------------------------------------------

def test_an_idle_client_is_logged_out_and_the_maildrop_freed(server, alice, settings):
    settings.POP3_TIMEOUT = 0.5
    client = logged_in(server)
    assert client.line() == replies.TIMEOUT
    assert client.closed()
    assert Mailbox.objects.get(pk=alice.pk).pop3_lock == ""
    settings.POP3_TIMEOUT = 10
    logged_in(server).transact("QUIT", "+OK")


def test_an_idle_client_is_logged_out_before_login_too(server, settings):
    settings.POP3_TIMEOUT = 0.5
    client = connect(server)
    assert client.line() == replies.TIMEOUT
    assert client.closed()


def test_a_client_that_stops_reading_is_dropped_and_the_maildrop_freed(server, alice,
                                                                     settings):
    deliver_to(alice, b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 200_000)  # 16 MB
    client = logged_in(server)
    settings.POP3_TIMEOUT = 0.5
    client.send("RETR 1")  # and never read the reply
    wait_until(lambda: Mailbox.objects.get(pk=alice.pk).pop3_lock == "",
               "the maildrop to be freed", 20, interval=0.1)
    client.close()


def test_a_half_sent_overlong_line_still_times_out(server, settings):
    settings.POP3_TIMEOUT = 0.5
    client = connect(server)
    client.send(b"x" * 20_000)
    assert client.closed(timeout=10)
