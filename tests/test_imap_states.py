"""The IMAP state table: every command is refused outside its states and accepted within them."""

from __future__ import annotations

import pytest

from mailcore.imap.session import COMMANDS, State
from tests.conftest import PASSWORD
from tests.imap_client import ALICE, IMAPClient, connect, plain

# One well-formed example of each command (on an empty INBOX).
SAMPLES: dict[str, bytes] = {
    "CAPABILITY": b"CAPABILITY", "NOOP": b"NOOP", "LOGOUT": b"LOGOUT", "ID": b"ID NIL",
    "STARTTLS": b"STARTTLS", "AUTHENTICATE": f"AUTHENTICATE PLAIN {plain('', ALICE, PASSWORD)}"
    .encode(), "LOGIN": f'LOGIN {ALICE} "{PASSWORD}"'.encode(),
    "ENABLE": b"ENABLE CONDSTORE", "SELECT": b"SELECT INBOX", "EXAMINE": b"EXAMINE INBOX",
    "CREATE": b"CREATE Fresh", "DELETE": b"DELETE Junk", "RENAME": b"RENAME Junk Spam",
    "SUBSCRIBE": b"SUBSCRIBE Sent", "UNSUBSCRIBE": b"UNSUBSCRIBE Sent",
    "LIST": b'LIST "" *', "LSUB": b'LSUB "" *', "NAMESPACE": b"NAMESPACE",
    "STATUS": b"STATUS INBOX (MESSAGES)", "APPEND": b"APPEND Drafts {14+}\r\nSubject: x\r\n\r\n",
    "IDLE": b"IDLE", "GETQUOTA": b'GETQUOTA ""', "GETQUOTAROOT": b"GETQUOTAROOT INBOX",
    "SETQUOTA": b'SETQUOTA "" (STORAGE 1)', "CHECK": b"CHECK", "CLOSE": b"CLOSE",
    "UNSELECT": b"UNSELECT", "EXPUNGE": b"EXPUNGE", "SEARCH": b"SEARCH ALL",
    "FETCH": b"FETCH 1:* FLAGS", "STORE": b"STORE 1:* +FLAGS (\\Seen)",
    "COPY": b"COPY 1:* Trash", "MOVE": b"MOVE 1:* Trash",
    "SORT": b"SORT (SUBJECT) UTF-8 ALL", "THREAD": b"THREAD REFERENCES UTF-8 ALL",
    "COMPRESS": b"COMPRESS DEFLATE", "CANCELUPDATE": b'CANCELUPDATE "t0"',
    "NOTIFY": b"NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MailboxName))",
}
UID_SAMPLES = [b"UID FETCH 1:* FLAGS", b"UID STORE 1:* +FLAGS (\\Seen)", b"UID COPY 1 Trash",
               b"UID MOVE 1 Trash", b"UID SEARCH ALL", b"UID EXPUNGE 1",
               b"UID SORT (SUBJECT) UTF-8 ALL", b"UID THREAD REFERENCES UTF-8 ALL"]


def test_every_command_has_a_sample():
    assert set(SAMPLES) == set(COMMANDS)


def session_in(server, state: State) -> IMAPClient:
    client = connect(server)
    if state is not State.NOT_AUTHENTICATED:
        client.login()
    if state is State.SELECTED:
        client.ok("SELECT INBOX")
    return client


@pytest.mark.parametrize("state", list(State))
def test_commands_outside_their_states_are_refused(server, alice, state):
    refused = [SAMPLES[verb] for verb, command in COMMANDS.items() if state not in command.states]
    if state is not State.SELECTED:
        refused += UID_SAMPLES
    assert refused
    # Each refusal is a BAD, which spends the error budget: a fresh session every ten.
    for start in range(0, len(refused), 10):
        client = session_in(server, state)
        for sample in refused[start:start + 10]:
            verb = " ".join(sample.decode().split()[:2 if sample.startswith(b"UID ") else 1])
            assert client.run(sample) == ([], f"BAD {verb} not valid in this state")
        assert client.run("NOOP")[1] == "OK NOOP completed"  # same state, still alive


@pytest.mark.parametrize("state,verb", [
    (state, verb) for verb, command in COMMANDS.items() for state in command.states])
def test_commands_within_their_states_are_accepted(server, alice, state, verb):
    client = session_in(server, state)
    tag = client.next_tag()
    client.send(tag.encode() + b" " + SAMPLES[verb] + b"\r\n")
    if verb == "IDLE":
        assert client.response() == "+ idling"
        client.send("DONE")
    untagged, done = client.collect(tag)
    expected = "NO [NOPERM]" if verb == "SETQUOTA" else "OK"  # accepted, and refused as such
    assert done.startswith(expected), (untagged, done)


@pytest.mark.parametrize("sample", UID_SAMPLES)
def test_uid_commands_are_accepted_when_selected(server, alice, sample):
    client = session_in(server, State.SELECTED)
    assert client.run(sample)[1].startswith("OK")
