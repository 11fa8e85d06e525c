"""IMAP FETCH: every data item, body sections and partials, \\Seen, BINARY, backfilled structure,
header sections from the header the store keeps."""

from __future__ import annotations

import imapclient
import pytest

from mailcore.message import mime
from mailcore.models import Message
from mailcore.store import structure
from mailcore.store.delivery import deliver
from tests.conftest import PASSWORD
from tests.imap_client import ALICE, connect, imaplib_client, message, selected
from tests.mailboxes import seen_by_an_earlier_session

MULTIPART = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: Bob <bob@example.test>, carol@example.test\r\n"
    b"Subject: report\r\n"
    b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"xyz\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--xyz\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9\r\n"
    b"--xyz\r\n"
    b"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"a.bin\"\r\n"
    b"\r\n"
    b"AAEC/w==\r\n"
    b"--xyz--\r\n"
)


@pytest.fixture
def mail(alice):
    deliver(message(1), "s@remote.test", [alice.pk])
    deliver(MULTIPART, "s@remote.test", [alice.pk])
    seen_by_an_earlier_session(alice)
    return alice


def fetch(client, command: str) -> str:
    untagged, done = client.run(command)
    assert done.startswith("OK"), done
    assert len(untagged) == 1, untagged
    return untagged[0]


def test_fast_items(server, mail):
    client = selected(server)
    row = Message.objects.get(uid=1)
    date = row.internal_date.strftime("%d-%b-%Y %H:%M:%S +0000")
    assert fetch(client, "FETCH 1 FAST") == (
        f'* 1 FETCH (FLAGS () INTERNALDATE "{date}" RFC822.SIZE {row.size})')
    assert fetch(client, "FETCH 1 (UID)") == "* 1 FETCH (UID 1)"


def test_envelope_and_bodystructure(server, mail):
    client = selected(server)
    assert fetch(client, "FETCH 2 ENVELOPE") == (
        '* 2 FETCH (ENVELOPE ("Tue, 2 Jan 2024 10:00:00 +0000" "report" '
        '(("Alice" NIL "alice" "example.test")) (("Alice" NIL "alice" "example.test")) '
        '(("Alice" NIL "alice" "example.test")) (("Bob" NIL "bob" "example.test")'
        '(NIL NIL "carol" "example.test")) NIL NIL NIL NIL))')
    assert fetch(client, "FETCH 2 BODYSTRUCTURE") == (
        '* 2 FETCH (BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL '
        '"quoted-printable" 9 0 NIL NIL NIL NIL)("application" "octet-stream" '
        '("name" "a.bin") NIL NIL "base64" 8 NIL ("attachment" ("filename" "a.bin")) '
        'NIL NIL) "mixed" ("boundary" "xyz") NIL NIL NIL))')
    assert fetch(client, "FETCH 2 BODY") == (
        '* 2 FETCH (BODY (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" '
        '9 0)("application" "octet-stream" ("name" "a.bin") NIL NIL "base64" 8) "mixed"))')


def test_body_sections(server, mail):
    client = selected(server)
    assert fetch(client, "FETCH 2 BODY.PEEK[1]") == "* 2 FETCH (BODY[1] {9}\r\ncaf=C3=A9)"
    assert fetch(client, "FETCH 2 BODY.PEEK[1.MIME]") == (
        "* 2 FETCH (BODY[1.MIME] {88}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n)")
    assert fetch(client, "FETCH 2 BODY.PEEK[HEADER.FIELDS (Subject To)]") == (
        "* 2 FETCH (BODY[HEADER.FIELDS (Subject To)] {67}\r\n"
        "To: Bob <bob@example.test>, carol@example.test\r\nSubject: report\r\n\r\n)")
    assert fetch(client, "FETCH 2 BODY.PEEK[HEADER.FIELDS.NOT (Subject To Date From)]") == (
        "* 2 FETCH (BODY[HEADER.FIELDS.NOT (Subject To Date From)] {68}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="xyz"\r\n\r\n)')
    assert fetch(client, "FETCH 2 BODY.PEEK[3]") == '* 2 FETCH (BODY[3] {0}\r\n)'
    header = MULTIPART[:MULTIPART.index(b"\r\n\r\n") + 4].decode()
    assert fetch(client, "FETCH 2 BODY.PEEK[HEADER]") == (
        f"* 2 FETCH (BODY[HEADER] {{{len(header)}}}\r\n{header})")
    assert fetch(client, "FETCH 2 RFC822.HEADER") == (
        f"* 2 FETCH (RFC822.HEADER {{{len(header)}}}\r\n{header})")


def test_partial_fetches(server, mail):
    client = selected(server)
    assert fetch(client, "FETCH 1 BODY.PEEK[]<0.4>") == "* 1 FETCH (BODY[]<0> {4}\r\nFrom)"
    assert fetch(client, "FETCH 1 BODY.PEEK[TEXT]<2.3>") == "* 1 FETCH (BODY[TEXT]<2> {3}\r\ndy )"
    assert fetch(client, "FETCH 1 BODY.PEEK[TEXT]<500.3>") == "* 1 FETCH (BODY[TEXT]<500> {0}\r\n)"


def test_binary_decodes_the_transfer_encoding(server, mail):
    client = selected(server)
    assert fetch(client, "FETCH 2 BINARY.PEEK[1]") == "* 2 FETCH (BINARY[1] {5}\r\ncafé)"
    assert fetch(client, "FETCH 2 BINARY.SIZE[2]") == "* 2 FETCH (BINARY.SIZE[2] 4)"
    assert fetch(client, "FETCH 2 BINARY.PEEK[2]") == (
        "* 2 FETCH (BINARY[2] ~{4}\r\n\x00\x01\x02\ufffd)")
    assert fetch(client, "FETCH 2 BINARY.PEEK[2]<1.2>") == (
        "* 2 FETCH (BINARY[2]<1> {2}\r\n\x01\x02)")


def test_a_body_fetch_sets_seen_and_reports_the_new_flags(server, mail):
    client = selected(server)
    assert fetch(client, "FETCH 1 BODY[TEXT]") == (
        "* 1 FETCH (BODY[TEXT] {8}\r\nBody 1\r\n FLAGS (\\Seen))")
    assert Message.objects.get(uid=1).seen
    # Already seen: no FLAGS added any more.
    assert fetch(client, "FETCH 1 BODY[TEXT]") == "* 1 FETCH (BODY[TEXT] {8}\r\nBody 1\r\n)"
    assert fetch(client, "FETCH 2 (FLAGS RFC822.TEXT)").startswith(
        "* 2 FETCH (FLAGS (\\Seen) RFC822.TEXT {")


def test_peek_and_examine_do_not_set_seen(server, mail):
    client = selected(server)
    fetch(client, "FETCH 1 BODY.PEEK[]")
    fetch(client, "FETCH 1 RFC822.HEADER")
    client.ok("EXAMINE INBOX")
    fetch(client, "FETCH 1 RFC822")
    assert not Message.objects.get(uid=1).seen


def test_uid_fetch_always_includes_the_uid(server, mail):
    client = selected(server)
    assert client.run("UID FETCH 2 FLAGS") == (["* 2 FETCH (UID 2 FLAGS ())"],
                                               "OK UID FETCH completed")
    assert client.run("UID FETCH 5:* FLAGS") == (["* 2 FETCH (UID 2 FLAGS ())"],
                                                 "OK UID FETCH completed")
    assert client.run("UID FETCH 7 FLAGS") == ([], "OK UID FETCH completed")


def test_message_numbers_beyond_the_last_are_bad(server, mail):
    client = selected(server)
    assert client.run("FETCH 3 FLAGS")[1] == "BAD Invalid message sequence number"
    assert client.run("FETCH 1:3 FLAGS")[1] == "BAD Invalid message sequence number"
    assert client.run("FETCH 2:* FLAGS") == (["* 2 FETCH (FLAGS ())"], "OK FETCH completed")


def test_fetch_on_an_empty_folder(server, alice):
    client = selected(server)
    assert client.run("FETCH 1:* FLAGS") == ([], "OK FETCH completed")
    assert client.run("FETCH 1 FLAGS")[1] == "BAD Invalid message sequence number"


def test_structure_missing_on_old_rows_is_computed_and_saved(server, mail):
    Message.objects.update(envelope=None, bodystructure=None)
    client = selected(server)
    assert fetch(client, "FETCH 2 (ENVELOPE)").startswith('* 2 FETCH (ENVELOPE ("Tue, 2 Jan')
    row = Message.objects.get(uid=2)
    assert row.envelope[1] == "report" and row.bodystructure["kind"] == "multipart"
    assert fetch(client, "FETCH 1 BODY.PEEK[1]") == "* 1 FETCH (BODY[1] {8}\r\nBody 1\r\n)"


def test_full_and_all_macros(server, mail):
    client = selected(server)
    assert fetch(client, "FETCH 1 ALL").count("ENVELOPE") == 1
    full = fetch(client, "FETCH 1 FULL")
    assert "ENVELOPE" in full and ' BODY ("text" "plain"' in full


def test_a_large_fetch_streams_every_message(server, alice):
    for n in range(600):
        deliver(message(n), "s@remote.test", [alice.pk])
    client = selected(server)
    untagged, done = client.run("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert done == "OK FETCH completed" and len(untagged) == 600
    assert untagged[599] == ("* 600 FETCH (UID 600 BODY[HEADER.FIELDS (SUBJECT)] {24}\r\n"
                             "Subject: message 599\r\n\r\n)")


def test_imaplib_fetch(server, mail):
    client = imaplib_client(server)
    client.select("INBOX")
    typ, data = client.fetch("1", "(RFC822)")
    assert typ == "OK" and data[0][1] == message(1)
    assert client.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Seen))"]
    client.logout()


def test_imapclient_fetch(server, mail):
    client = imapclient.IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False, timeout=10)
    client.login(ALICE, PASSWORD)
    client.select_folder("INBOX", readonly=True)
    result = client.fetch([1, 2], ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE"])
    assert result[2][b"ENVELOPE"].subject == b"report"
    assert result[2][b"BODYSTRUCTURE"].is_multipart
    assert result[1][b"RFC822.SIZE"] == len(message(1))
    client.logout()


def test_fetch_needs_a_selected_folder(server, alice):
    client = connect(server, login=True)
    assert client.run("FETCH 1 FLAGS")[1] == "BAD FETCH not valid in this state"
    assert client.run("UID FETCH 1 FLAGS")[1] == "BAD UID FETCH not valid in this state"


# Header sections from Message.header -------------------------------------------------------

HEADERS = (
    b"Received: from a\r\n\tby b; Tue, 2 Jan 2024 10:00:00 +0000\r\n"
    b"From: Ren\xc3\xa9 <rene@example.test>\r\n"
    b"SUBJECT: caf\xc3\xa9\r\n"
    b"X-Folded: one\r\n two\r\n\tthree\r\n"
    b"subject : second\r\n"
    b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
    b"\r\nbody\r\n"
)
HEADER_ITEMS = (
    "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]", "BODY.PEEK[HEADER.FIELDS (x-folded)]",
    "BODY.PEEK[HEADER.FIELDS (X-Missing)]", "BODY.PEEK[HEADER.FIELDS.NOT (Received Subject)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (X-Missing)]", "BODY.PEEK[HEADER]",
    "BODY.PEEK[HEADER.FIELDS (SUBJECT)]<3.20>", "RFC822.HEADER",
)


def _expected(raw: bytes, item: str) -> bytes:
    """Return FETCH's answer for a header item, as read from the whole message."""
    if item == "RFC822.HEADER":
        return b"RFC822.HEADER " + _literal(mime.section_bytes(raw, None, "HEADER"))
    spec, _, partial = item[len("BODY.PEEK["):].partition("]")
    data = mime.section_bytes(raw, mime.parse_structure(raw), spec)
    label = f"BODY[{spec}]".encode()
    if partial:
        origin, count = map(int, partial.strip("<>").split("."))
        data, label = data[origin:origin + count], label + b"<%d>" % origin
    return label + b" " + _literal(data)


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


def _fetch_bytes(client, command: str) -> list[bytes]:
    """Return the untagged FETCH responses as raw bytes (8-bit headers stay as sent)."""
    untagged, done = client.run(command)
    assert done.startswith("OK"), done
    return [line.encode("utf-8", "surrogateescape") for line in untagged]


def _check_header_items(client, raws: list[bytes]) -> None:
    for item in HEADER_ITEMS:
        got = _fetch_bytes(client, f"FETCH 1:* ({item})")
        assert got == [b"* %d FETCH (%s)" % (n, _expected(raw, item))
                       for n, raw in enumerate(raws, 1)], item


@pytest.fixture
def headers(alice):
    raws = [HEADERS, MULTIPART, message(3), b"Subject: no body, no blank line"]
    for raw in raws:
        deliver(raw, "s@remote.test", [alice.pk])
    seen_by_an_earlier_session(alice)
    return raws


def test_delivery_keeps_the_header_and_fetch_answers_from_it(server, headers):
    kept = dict(Message.objects.values_list("uid", "header"))
    assert kept == {n: raw[:mime.header_end(raw)] for n, raw in enumerate(headers, 1)}
    _check_header_items(selected(server), headers)


def test_header_sections_from_the_kept_header_are_those_of_the_blob(server, headers):
    # Kept headers that differ from the blob show which one FETCH reads: the kept one.
    Message.objects.filter(uid=1).update(header=HEADERS.replace(b"one", b"ONE")[:200])
    client = selected(server)
    assert b"ONE" in _fetch_bytes(client, "FETCH 1 (BODY.PEEK[HEADER.FIELDS (X-FOLDED)])")[0]
    Message.objects.filter(uid=1).update(header=HEADERS[:mime.header_end(HEADERS)])
    _check_header_items(client, headers)


def test_headers_missing_on_old_rows_are_read_from_the_blob_and_saved(server, headers):
    Message.objects.update(header=None)
    client = selected(server)
    _check_header_items(client, headers)
    kept = dict(Message.objects.values_list("uid", "header"))
    assert kept == {n: raw[:mime.header_end(raw)] for n, raw in enumerate(headers, 1)}


def test_a_header_too_long_to_keep_is_read_from_the_blob(server, alice, settings):
    long_header = b"".join(b"X-Long-%d: %s\r\n" % (n, b"x" * 900) for n in range(80))
    raw = long_header + message(1)
    assert mime.header_end(raw) > structure.HEADER_KEEP_LIMIT
    deliver(raw, "s@remote.test", [alice.pk])
    seen_by_an_earlier_session(alice)
    assert bytes(Message.objects.get().header) == b""
    _check_header_items(selected(server), [raw])


def test_a_message_expunged_elsewhere_still_shows_its_header_fields(server, headers):
    reader, other = selected(server), selected(server)
    other.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")
    item = "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)]"
    assert _fetch_bytes(reader, f"FETCH 1 ({item})") == [
        b"* 1 FETCH (%s)" % _expected(HEADERS, item)]


def test_copies_keep_the_header_and_it_goes_with_the_message(server, headers):
    client = selected(server)
    client.ok("CREATE Kept")
    client.ok("COPY 1:* Kept")
    assert Message.objects.filter(folder__name="Kept").exclude(header=None).count() == 4
    client.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    client.ok("EXPUNGE")
    assert not Message.objects.filter(folder__name="INBOX").exists()
    assert Message.objects.exclude(header=None).count() == 4
