"""Fuzzing every listener: mutated commands in every state never cause an internal error.

Each listener gets a fixed number of seeded, reproducible cases: valid commands of its
protocol mutated (random bytes, NUL, overlong lines, bare CR/LF, bad literals, deep
nesting, swapped tokens, commands of other states), before and after logging in, ended
either in order (read to the end of the session) or by hanging up mid-command. The
conftest guard fails the test on any ERROR the server logs; each test also checks no reply
is the generic temporary failure that an internal error produces, and that the listener
still answers a NOOP afterwards. A failing case prints its seed and bytes to replay.
"""

from __future__ import annotations

import base64
import random
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from mailcore.store.delivery import deliver
from tests.conftest import PASSWORD
from tests.imap_client import message
from tests.servers import RawClient

ALICE = "alice@example.test"
PLAIN = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
CASES = 200  # per listener and state: a few seconds each
TLS_CASES = 40  # TLS handshakes cost more; the protocol code is the same

NASTY_TOKENS = [
    b"", b"*", b"0", b"-1", b"4294967296", b"18446744073709551616", b"1:*", b"*:1", b"$",
    b'"', b'"\\"', b"\\", b"()", b"(", b")", b"NIL", b"{0}", b"{99999999}", b"{5+}",
    b"<", b"<>", b"<@", b"<a@", b"@", b":", b"%", b"\xff\xfe", "é".encode(), b"\x00",
    b"\x1b[0m", b"=?utf-8?q?x?=", b"A" * 600, b"\t", b"BODY[", b"BODY[]<0.", b"~{3}",
]


# Mutations ----------------------------------------------------------------------------------

def _random_bytes(rng: random.Random, line: bytes) -> bytes:
    return rng.randbytes(rng.randint(1, 300))


def _with_nul(rng: random.Random, line: bytes) -> bytes:
    at = rng.randint(0, len(line))
    return line[:at] + b"\0" + line[at:]


def _overlong(rng: random.Random, line: bytes) -> bytes:
    return line + b" " + b"x" * rng.choice([520, 1100, 70_000])


def _bare_line_ends(rng: random.Random, line: bytes) -> bytes:
    at = rng.randint(0, len(line))
    return line[:at] + rng.choice([b"\n", b"\r", b"\r\r\n"]) + line[at:]


def _bad_literal(rng: random.Random, line: bytes) -> bytes:
    return line + rng.choice([
        b" {99999999}", b" {99999999+}\r\nabc", b" {5+}\r\nab", b" {5}\r\nabcdefgh",
        b" {0}\r\n", b" {-1}", b" {5", b" {18446744073709551616}", b" ~{3+}\r\n\x00\x01\x02",
    ])


def _deep_nesting(rng: random.Random, line: bytes) -> bytes:
    depth = rng.choice([20, 99, 100, 101, 500])
    return line + b" " + rng.choice([
        b"(" * depth + b"ALL" + b")" * depth, b"NOT " * depth + b"SEEN",
        b"OR SEEN " * depth + b"ALL", b"(" * depth, b"NOT (OR SEEN " * depth + b"ALL",
        b"BODY[" * depth,
    ])


def _truncated(rng: random.Random, line: bytes) -> bytes:
    return line[:rng.randint(0, len(line))]


def _token_swapped(rng: random.Random, line: bytes) -> bytes:
    words = line.split(b" ")
    at = rng.randrange(len(words))
    action = rng.random()
    if action < 0.5:
        words[at] = rng.choice(NASTY_TOKENS)
    elif action < 0.7:
        words.insert(at, rng.choice(NASTY_TOKENS))
    elif action < 0.85 and len(words) > 1:
        del words[at]
    else:
        rng.shuffle(words)
    return b" ".join(words)


def _bit_flipped(rng: random.Random, line: bytes) -> bytes:
    if not line:
        return line
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _case_changed(rng: random.Random, line: bytes) -> bytes:
    return bytes(c ^ 0x20 if 0x41 <= (c & ~0x20) <= 0x5A and rng.random() < 0.5 else c
                 for c in line)


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    _random_bytes, _with_nul, _overlong, _bare_line_ends, _bad_literal, _deep_nesting,
    _truncated, _token_swapped, _token_swapped, _bit_flipped, _case_changed,
]


# Protocols --------------------------------------------------------------------------------

@dataclass
class Protocol:
    """What fuzzing a listener needs: its commands, how to reach a state, how to end."""

    port: str
    tls: bool
    corpus: list[bytes]  # valid commands of every state; the wrong state is a mutation too
    setups: dict[str, Callable[[RawClient, random.Random], None]]
    sentinel: bytes  # ends the session from any state: continuation, DATA, IDLE, literal
    failure: str  # what an internal error's reply contains
    check: Callable[[RawClient], None]  # the listener still answers
    tag: Callable[[random.Random], bytes] = lambda rng: b""


def _smtp_greeted(client: RawClient, rng: random.Random) -> None:
    assert client.smtp_reply().startswith("220 ")


def _smtp_ehlo(client: RawClient, rng: random.Random) -> None:
    _smtp_greeted(client, rng)
    client.transact("EHLO fuzz.test", "250 ", smtp=True)


def _smtp_transaction(client: RawClient, rng: random.Random) -> None:
    _smtp_ehlo(client, rng)
    client.transact("MAIL FROM:<fuzz@remote.test>", "250 ", smtp=True)
    client.transact(f"RCPT TO:<{ALICE}>", "250 ", smtp=True)
    if rng.random() < 0.5:
        client.transact("DATA", "354 ", smtp=True)


def _submission_login(client: RawClient, rng: random.Random, starttls: bool) -> None:
    _smtp_ehlo(client, rng)
    if starttls:
        client.transact("STARTTLS", "220 ", smtp=True)
        client.starttls()
        client.transact("EHLO fuzz.test", "250 ", smtp=True)
    client.transact(f"AUTH PLAIN {PLAIN}", "235 ", smtp=True)
    if rng.random() < 0.3:
        client.transact(f"MAIL FROM:<{ALICE}>", "250 ", smtp=True)


def _smtp_check(client: RawClient) -> None:
    assert client.smtp_reply().startswith("220 ")
    client.transact("NOOP", "250 ", smtp=True)


SMTP_CORPUS = [
    b"EHLO client.test", b"HELO client.test", b"MAIL FROM:<fuzz@remote.test>",
    b"MAIL FROM:<fuzz@remote.test> SIZE=100 BODY=8BITMIME SMTPUTF8", b"MAIL FROM:<>",
    b"RCPT TO:<alice@example.test>", b"RCPT TO:<someone@remote.test>", b"DATA",
    b"Subject: x\r\n\r\nbody\r\n.", b"RSET", b"NOOP", b"VRFY alice@example.test",
    b"EXPN staff", b"HELP MAIL", b"STARTTLS", b"AUTH PLAIN", b"AUTH PLAIN " + PLAIN.encode(),
    b"AUTH LOGIN", b"AUTH LOGIN " + base64.b64encode(ALICE.encode()), b"AUTH CRAM-MD5",
    b"BDAT 5 LAST", b"QUIT", b"MAIL FROM:<alice@example.test>", b"RCPT TO:<bob@example.test>",
]
SMTP_SENTINEL = b"\r\n*\r\n.\r\nQUIT\r\n"
SMTP_FAILURE = "4.3.0 Temporary failure"


def _pop3_greeted(client: RawClient, rng: random.Random) -> None:
    assert client.line().startswith("+OK")


def _pop3_login(client: RawClient, rng: random.Random) -> None:
    _pop3_greeted(client, rng)
    client.transact(f"USER {ALICE}", "+OK")
    client.transact(f"PASS {PASSWORD}", "+OK")


def _pop3_check(client: RawClient) -> None:
    _pop3_greeted(client, random.Random())
    client.transact("USER bob@example.test", "+OK")  # bob's maildrop: never fuzzed or locked
    client.transact(f"PASS {PASSWORD}", "+OK")
    client.transact("NOOP", "+OK")
    client.transact("QUIT", "+OK")


POP3_CORPUS = [
    b"CAPA", b"USER alice@example.test", b"PASS " + PASSWORD.encode(), b"APOP alice x",
    b"AUTH", b"AUTH PLAIN", b"AUTH PLAIN " + PLAIN.encode(), b"AUTH LOGIN", b"STLS",
    b"STAT", b"LIST", b"LIST 1", b"UIDL", b"UIDL 2", b"RETR 1", b"TOP 1 0", b"TOP 2 5",
    b"DELE 1", b"RSET", b"NOOP", b"QUIT", b"UTF8", b"LIST 4294967296", b"TOP 1 -1",
]
POP3_SENTINEL = b"\r\n*\r\nQUIT\r\n"
POP3_FAILURE = "[SYS/TEMP] Temporary failure"


def _imap_greeted(client: RawClient, rng: random.Random) -> None:
    assert client.line().startswith("* OK")


def _imap_login(client: RawClient, rng: random.Random) -> None:
    _imap_greeted(client, rng)
    _imap_run(client, f'l1 LOGIN {ALICE} "{PASSWORD}"', "l1 OK")


def _imap_selected(client: RawClient, rng: random.Random) -> None:
    _imap_login(client, rng)
    _imap_run(client, rng.choice(["s1 SELECT INBOX", "s1 EXAMINE INBOX"]), "s1 OK")


def _imap_run(client: RawClient, command: str, expected: str) -> None:
    client.send(command)
    while not (line := client.line()).startswith(expected.split()[0] + " "):
        pass
    assert line.startswith(expected), line


def _imap_check(client: RawClient) -> None:
    _imap_greeted(client, random.Random())
    _imap_run(client, "c1 NOOP", "c1 OK")
    _imap_run(client, f'c2 LOGIN {ALICE} "{PASSWORD}"', "c2 OK")
    _imap_run(client, "c3 SELECT INBOX", "c3 OK")
    _imap_run(client, "c4 NOOP", "c4 OK")


IMAP_CORPUS = [
    b"CAPABILITY", b"NOOP", b"ID NIL", b'ID ("name" "fuzz")', b"STARTTLS",
    b'LOGIN alice@example.test "' + PASSWORD.encode() + b'"', b"LOGIN {5}", b"LOGIN {5+}",
    b"AUTHENTICATE PLAIN", b"AUTHENTICATE PLAIN " + PLAIN.encode(), b"AUTHENTICATE XOAUTH2",
    b"ENABLE CONDSTORE", b"ENABLE UTF8=ACCEPT QRESYNC", b"SELECT INBOX",
    b"SELECT INBOX (CONDSTORE)", b"EXAMINE INBOX", b"CREATE Fuzz", b"CREATE Fuzz/Deeper",
    b"RENAME Fuzz Fuzzed", b"DELETE Fuzzed", b"SUBSCRIBE INBOX", b"UNSUBSCRIBE INBOX",
    b'LIST "" *', b'LIST (SUBSCRIBED) "" "%" RETURN (CHILDREN STATUS (MESSAGES))',
    b'LSUB "" *', b"NAMESPACE", b"STATUS INBOX (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ)",
    b"APPEND INBOX (\\Seen) {5+}\r\nhello", b"APPEND INBOX {10}", b"IDLE", b"DONE",
    b"GETQUOTAROOT INBOX", b"GETQUOTA \"\"", b"SETQUOTA \"\" (STORAGE 10)", b"CHECK",
    b"CLOSE", b"UNSELECT", b"EXPUNGE", b"UID EXPUNGE 1:2",
    b"SEARCH OR SEEN NOT (FLAGGED) SUBJECT x", b"SEARCH RETURN (MIN MAX COUNT SAVE) ALL",
    b"UID SEARCH CHARSET UTF-8 BODY \"\xc3\xa9\"", b"SEARCH $", b"SEARCH MODSEQ 1",
    b"SEARCH ALL", b"UID SEARCH 1:* UNSEEN", b"SEARCH RETURN (COUNT) NOT DELETED",
    # Programs as deep as the grammar takes (100 levels, as Dovecot): all valid.
    b"SEARCH " + b"NOT " * 100 + b"SEEN", b"UID SEARCH " + b"OR SEEN " * 100 + b"ALL",
    b"SEARCH " + b"NOT OR BODY x " * 50 + b"DELETED", b"SEARCH " + b"(" * 100 + b"ALL" + b")" * 100,
    b"FETCH 1:* (FLAGS UID RFC822.SIZE)", b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    b"FETCH 1:2 (BODYSTRUCTURE ENVELOPE BODY[1]<0.10>)", b"UID FETCH 1:* FULL",
    b"FETCH 1 BINARY[1]", b"STORE 1 +FLAGS (\\Seen $Fuzz)", b"UID STORE 1:* -FLAGS.SILENT ()",
    b"STORE 1 (UNCHANGEDSINCE 1) FLAGS (\\Deleted)", b"COPY 1 Trash", b"UID MOVE 2 Junk",
    b"MOVE 1:* Fuzz", b"LOGOUT",
]
IMAP_SENTINEL = b"\r\nDONE\r\n*\r\nzz LOGOUT\r\n"
IMAP_FAILURE = "[UNAVAILABLE]"  # internal errors, and the database refusing a query


def _imap_tag(rng: random.Random) -> bytes:
    if rng.random() < 0.8:
        return b"a1 "
    return rng.choice([b"a1 UID ", b"* ", b"+ ", b"", b"a\xff ", b"a1  ", b"{3}\r\n"])


SMTP_SETUPS = {"greeted": _smtp_greeted, "ehlo": _smtp_ehlo, "transaction": _smtp_transaction}
PROTOCOLS = {
    "smtp": Protocol("smtp", False, SMTP_CORPUS, SMTP_SETUPS, SMTP_SENTINEL, SMTP_FAILURE,
                     _smtp_check),
    "submission": Protocol(
        "submission", False, SMTP_CORPUS,
        {"greeted": _smtp_greeted, "ehlo": _smtp_ehlo,
         "logged-in": lambda c, rng: _submission_login(c, rng, starttls=True)},
        SMTP_SENTINEL, SMTP_FAILURE, _smtp_check),
    "submissions": Protocol(
        "submissions", True, SMTP_CORPUS,
        {"ehlo": _smtp_ehlo,
         "logged-in": lambda c, rng: _submission_login(c, rng, starttls=False)},
        SMTP_SENTINEL, SMTP_FAILURE, _smtp_check),
    "pop3": Protocol("pop3", False, POP3_CORPUS,
                     {"greeted": _pop3_greeted, "logged-in": _pop3_login},
                     POP3_SENTINEL, POP3_FAILURE, _pop3_check),
    "pop3s": Protocol("pop3s", True, POP3_CORPUS,
                      {"greeted": _pop3_greeted, "logged-in": _pop3_login},
                      POP3_SENTINEL, POP3_FAILURE, _pop3_check),
    "imap": Protocol("imap", False, IMAP_CORPUS,
                     {"greeted": _imap_greeted, "logged-in": _imap_login,
                      "selected": _imap_selected},
                     IMAP_SENTINEL, IMAP_FAILURE, _imap_check, _imap_tag),
    "imaps": Protocol("imaps", True, IMAP_CORPUS,
                      {"greeted": _imap_greeted, "selected": _imap_selected},
                      IMAP_SENTINEL, IMAP_FAILURE, _imap_check, _imap_tag),
}


# The fuzzer -------------------------------------------------------------------------------

def payload(protocol: Protocol, rng: random.Random) -> tuple[bytes, bool]:
    """Return the bytes of one case, and whether to hang up right after sending them."""
    lines = []
    for _ in range(rng.randint(1, 4)):
        line = rng.choice(protocol.corpus)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):  # a third stay valid
            line = rng.choice(MUTATIONS)(rng, line)
        lines.append(protocol.tag(rng) + line)
    data = b"\r\n".join(lines)
    hang_up = rng.random() < 0.3
    if not hang_up or rng.random() < 0.5:  # else: hang up mid-line
        data += b"\r\n"
    return data, hang_up


def read_to_end(client: RawClient, wait: float) -> bytes:
    """Read until the server closes (or, on TLS, where we cannot half-close, a while)."""
    client.sock.settimeout(wait)
    received = client.buffer
    try:
        while chunk := client.sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionError, ssl.SSLError, OSError):
        pass
    return received


def run_case(server, protocol: Protocol, state: str, seed: int) -> None:
    rng = random.Random(seed)
    client = RawClient(server.port(protocol.port), tls=protocol.tls)
    try:
        protocol.setups[state](client, rng)
        data, hang_up = payload(protocol, rng)
        try:
            client.send(data)
            if hang_up:
                return
            client.send(protocol.sentinel)
            if not isinstance(client.sock, ssl.SSLSocket):
                client.sock.shutdown(socket.SHUT_WR)  # EOF ends any state: literal, DATA
        except OSError:
            return  # the server hung up first (too many errors, a line too long)
        received = read_to_end(client, wait=1 if isinstance(client.sock, ssl.SSLSocket) else 10)
        text = received.decode("utf-8", "replace")
        assert protocol.failure not in text, (seed, data, text)
        if protocol.port.startswith(("smtp", "submission")):
            lines = [line for line in re.split(r"\r?\n", text) if line]
            assert all(re.match(r"\d{3}[ -]", line) for line in lines), (seed, data, text)
    finally:
        client.close()


@pytest.fixture
def mail(alice, bob):
    """A few messages in alice's INBOX to fetch, search, store and delete."""
    for n in range(1, 4):
        deliver(message(n, body=f"message {n}\r\n.dot\r\n"), "s@remote.test", [alice.pk])
    return alice


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_mutated_commands_never_cause_an_internal_error(server, settings, mail, name):
    settings.AUTH_MAX_FAILURES = 1_000_000  # the fuzzer's bad logins must not lock it out
    settings.AUTH_FAILURE_DELAY = 0
    protocol = PROTOCOLS[name]
    cases = TLS_CASES if protocol.tls else CASES
    seed = sum(name.encode()) * 100_000
    for state in protocol.setups:
        for n in range(cases):
            run_case(server, protocol, state, seed + n)
        seed += cases
    client = RawClient(server.port(protocol.port), tls=protocol.tls)
    try:
        protocol.check(client)
    finally:
        client.close()
