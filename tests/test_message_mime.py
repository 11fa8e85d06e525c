"""MIME structure, ENVELOPE, BODY[section] and their IMAP form: unit tests, Dovecot compared."""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcore.imap.bodystructure import bodystructure_sexp, envelope_sexp, human_string, string
from mailcore.message import mime
from mailcore.message.address import Address
from mailcore.message.envelope import read_envelope
from mailcore.message.header import raw, text
from tests.conftest import require_program
from tests.mime_corpus import corpus, crlf
from tests.servers import free_port, listens
from tests.waiting import wait_until

CORPUS = corpus()


def structure_of(message: str | bytes) -> dict:
    return mime.parse_structure(crlf(message))


# -- Structure --------------------------------------------------------------------------

def test_a_plain_message_is_one_text_part_with_octets_and_lines() -> None:
    raw_message = crlf("Subject: hi\n\nline one\nline two\n")
    structure = mime.parse_structure(raw_message)
    assert structure["kind"] == "single"
    assert structure["type"] is None  # no Content-Type: text/plain us-ascii (RFC 2045)
    assert structure["header"] == [0, 15]
    assert structure["body"] == [15, len(raw_message)]
    assert (structure["size"], structure["lines"]) == (20, 2)
    assert bodystructure_sexp(structure) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2 NIL NIL NIL NIL)')
    assert bodystructure_sexp(structure, extensible=False) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2)')


def test_multipart_parts_give_up_the_line_break_before_a_boundary() -> None:
    structure = structure_of(
        "Content-Type: multipart/alternative; boundary=b\n\npreamble\n"
        "--b\nContent-Type: text/plain; charset=utf-8\n\nplain\n"
        "--b\nContent-Type: TEXT/HTML\n\n<p>html</p>\n--b--\nepilogue\n")
    plain, html = structure["parts"]
    assert (plain["size"], plain["lines"]) == (5, 0)
    assert (html["type"], html["subtype"], html["size"]) == ("TEXT", "HTML", 11)
    assert bodystructure_sexp(structure) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "b") NIL NIL NIL)')


def test_message_rfc822_carries_its_envelope_and_structure() -> None:
    structure = structure_of(
        "Content-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
        "Subject: inner\nFrom: Inner <in@example.test>\n\ninner body\n--b--\n")
    (attached,) = structure["parts"]
    assert attached["kind"] == "message"
    assert attached["message"]["envelope"][1] == "inner"
    assert bodystructure_sexp(attached) == (
        b'("message" "rfc822" NIL NIL NIL "7bit" 59 (NIL "inner" (("Inner" NIL "in" '
        b'"example.test")) (("Inner" NIL "in" "example.test")) (("Inner" NIL "in" '
        b'"example.test")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") '
        b'NIL NIL "7bit" 10 0 NIL NIL NIL NIL) 3 NIL ("attachment" NIL) NIL NIL)')


def test_broken_mime_degrades_instead_of_raising() -> None:
    unclosed = structure_of("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nto the end\n")
    assert [p["size"] for p in unclosed["parts"]] == [12]
    no_boundary = structure_of("Content-Type: multipart/mixed\n\nno parts\n")
    assert no_boundary["kind"] == "multipart" and no_boundary["parts"] == []
    assert bodystructure_sexp(no_boundary, extensible=False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")')
    bad_type = structure_of("Content-Type: text/plain garbage\n\nx\n")
    assert bodystructure_sexp(bad_type, extensible=False) == b'("" "" NIL NIL NIL "7bit" 3)'


def test_content_fields_count_only_in_mime_messages() -> None:
    assert structure_of("Content-Transfer-Encoding: base64\n\naGk=\n")["encoding"] is None
    assert structure_of("MIME-Version: 1.0\nContent-Transfer-Encoding: base64\n\naGk=\n")[
        "encoding"] == "base64"


def test_rfc2231_pieces_are_joined_but_not_decoded() -> None:
    structure = structure_of(
        "Content-Type: application/octet-stream;\n name*0*=utf-8''%E2%82%AC;\n"
        " name*1=\" 100%\"\nContent-Disposition: attachment; filename*=utf-8''a.txt;"
        " filename=a.txt\n\nx\n")
    # Only the "%" of the plain piece is escaped when joined to an extended one.
    assert structure["params"] == [["name*", "utf-8''%E2%82%AC 100%25"]]
    assert structure["disposition_params"] == [["filename", "a.txt"],
                                               ["filename*", "utf-8''a.txt"]]


def test_nesting_past_the_limit_becomes_an_opaque_part() -> None:
    message = "x\n"
    for i in range(mime.MAX_NESTING + 20):
        message = f"Content-Type: multipart/mixed; boundary=d{i}\n\n--d{i}\n{message}\n--d{i}--\n"
    part = structure_of(message)
    depth = 0
    while part["kind"] == "multipart":
        part, depth = part["parts"][0], depth + 1
    assert depth == mime.MAX_NESTING - 1
    assert (part["type"], part["subtype"]) == ("application", "octet-stream")


def test_a_boundary_longer_than_rfc_2046_allows_still_closes() -> None:
    # Deviation from Dovecot 2.3, which misses the closing delimiter of a boundary longer
    # than 80 characters (it looks at 84 bytes of a line) and reports an extra, empty
    # part. RFC 2046 allows 70; we honour whatever boundary the message declares.
    boundary = "x" * 90
    structure = structure_of(f"Content-Type: multipart/mixed; boundary={boundary}\n\n"
                             f"--{boundary}\n\nonly part\n--{boundary}--\n")
    assert len(structure["parts"]) == 1


@pytest.mark.parametrize("name,raw_message", CORPUS, ids=[name for name, _ in CORPUS])
def test_parts_cover_the_message_contiguously(name: str, raw_message: bytes) -> None:
    def check(part: dict) -> None:
        assert part["header"][1] == part["body"][0]
        assert part["size"] == part["body"][1] - part["body"][0]
        assert part["lines"] == raw_message.count(b"\n", *part["body"])
        children = part.get("parts") or ([part["message"]] if "message" in part else [])
        for child in children:
            assert part["body"][0] <= child["header"][0] <= child["body"][1] <= part["body"][1]
            check(child)

    structure = mime.parse_structure(raw_message)
    assert structure["header"][0] == 0 and structure["body"][1] == len(raw_message)
    check(structure)


@pytest.mark.parametrize("name,raw_message", CORPUS, ids=[name for name, _ in CORPUS])
def test_structure_survives_a_json_round_trip(name: str, raw_message: bytes) -> None:
    structure = mime.parse_structure(raw_message)
    stored = json.loads(json.dumps(structure, ensure_ascii=False))
    assert bodystructure_sexp(stored) == bodystructure_sexp(structure)
    env = json.loads(json.dumps(read_envelope(raw_message)))
    assert envelope_sexp(env) == envelope_sexp(read_envelope(raw_message))


def test_mutated_and_random_messages_never_raise() -> None:
    rng = random.Random(20240514)
    pieces = [b"--b", b"--b--", b"--outer", b"\r\n", b"\r\n\r\n", b" ", b"\t", b'"', b"(",
              b")", b"<", b">", b";", b"=", b"*0*=", b":", b"@", b",", b"\\", b"\xff", b"\x00",
              b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: message/rfc822",
              b"Content-Type: multipart/digest; boundary=outer", b"\n", b"\r"]
    samples = [message for _, message in CORPUS]
    for _ in range(400):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data) + 1)
            if rng.random() < 0.3:
                del data[at:at + rng.randint(1, 40)]
            else:
                data[at:at] = rng.choice(pieces)
        if len(samples) < 200:
            samples.append(bytes(data))
        structure = mime.parse_structure(bytes(data))
        json.dumps(structure)
        bodystructure_sexp(structure)
        bodystructure_sexp(structure, extensible=False)
        envelope_sexp(read_envelope(bytes(data)))
        for spec in ("", "HEADER", "TEXT", "1", "1.MIME", "1.1", "2.HEADER", "1.2.TEXT",
                     "HEADER.FIELDS (SUBJECT)", "1.HEADER.FIELDS.NOT (FROM)"):
            mime.section_bytes(bytes(data), structure, spec)
    for size in (0, 1, 2, 3, 100):
        mime.parse_structure(bytes(rng.randrange(256) for _ in range(size)))


# -- BODY[section] ----------------------------------------------------------------------

NESTED = crlf(
    "Subject: outer\nX-Folded: one\n two\nContent-Type: multipart/mixed; boundary=b\n\n"
    "--b\nContent-Type: text/plain\n\nfirst\n"
    "--b\nContent-Type: message/rfc822\n\n"
    "Subject: inner\nContent-Type: multipart/alternative; boundary=i\n\n"
    "--i\n\ninner plain\n--i\nContent-Type: text/html\n\n<p>inner</p>\n--i--\n"
    "--b--\n")


@pytest.mark.parametrize("spec,expected", [
    ("", NESTED),
    ("HEADER", crlf("Subject: outer\nX-Folded: one\n two\n"
                    "Content-Type: multipart/mixed; boundary=b\n\n")),
    ("1", b"first"),
    ("1.MIME", b"Content-Type: text/plain\r\n\r\n"),
    ("2.MIME", b"Content-Type: message/rfc822\r\n\r\n"),
    ("2.HEADER", crlf("Subject: inner\nContent-Type: multipart/alternative; boundary=i\n\n")),
    ("2.1", b"inner plain"),
    ("2.2", b"<p>inner</p>"),
    ("2.2.MIME", b"Content-Type: text/html\r\n\r\n"),
    ("2.HEADER.FIELDS (subject)", b"Subject: inner\r\n\r\n"),
    ("HEADER.FIELDS (X-FOLDED \"Subject\")", crlf("Subject: outer\nX-Folded: one\n two\n\n")),
    ("HEADER.FIELDS.NOT (SUBJECT CONTENT-TYPE)", crlf("X-Folded: one\n two\n\n")),
    ("HEADER.FIELDS (NONE)", b"\r\n"),
    ("1.1", b"first"),  # Dovecot: a leaf part is its own part 1
    ("3", b""),  # no such part: an empty string, as Dovecot answers
    ("1.HEADER", b""),  # HEADER and TEXT only exist for message/rfc822 parts
    ("1.2", b""),
])
def test_section_bytes(spec: str, expected: bytes) -> None:
    structure = mime.parse_structure(NESTED)
    assert mime.section_bytes(NESTED, structure, spec) == expected


def test_part_one_of_a_single_part_message_is_its_body() -> None:
    message = crlf("Subject: s\n\nthe body\n")
    structure = mime.parse_structure(message)
    assert mime.section_bytes(message, structure, "1") == b"the body\r\n"
    assert mime.section_bytes(message, structure, "TEXT") == b"the body\r\n"
    assert mime.section_bytes(message, structure, "1.MIME") == b"Subject: s\r\n\r\n"
    assert mime.section_bytes(message, structure, "1.1") == b""


def test_find_part_numbers_inside_an_encapsulated_message() -> None:
    structure = mime.parse_structure(NESTED)
    assert mime.find_part(structure, [2, 2])["subtype"] == "html"
    assert mime.find_part(structure, [2])["kind"] == "message"
    assert mime.find_part(structure, [1, 1]) is mime.find_part(structure, [1])
    assert mime.find_part(structure, [3]) is None


def test_section_text_of_message_rfc822_is_the_encapsulated_body() -> None:
    structure = mime.parse_structure(NESTED)
    text_bytes = mime.section_bytes(NESTED, structure, "2.TEXT")
    # The inner closing delimiter's line is the inner multipart's; the line break before
    # the outer one is the outer boundary's.
    assert text_bytes.startswith(b"--i\r\n") and text_bytes.endswith(b"--i--\r\n")


@pytest.mark.parametrize("spec", ["0", "1.", ".1", "MIME", "1.FOO", "HEADER.FIELDS",
                                  "HEADER.FIELDS ()", "1.2.MIME.TEXT", "TEXT.1"])
def test_malformed_sections_raise_value_error(spec: str) -> None:
    with pytest.raises(ValueError):
        mime.section_bytes(NESTED, mime.parse_structure(NESTED), spec)


# -- ENVELOPE and strings ---------------------------------------------------------------

def test_envelope_defaults_sender_and_reply_to_to_from() -> None:
    env = read_envelope(crlf("From: A <a@example.test>\nTo: b@example.test\n\nx\n"))
    assert env[2] == env[3] == env[4] == [Address("A", None, "a", "example.test")]
    assert env[5] == [Address(None, None, "b", "example.test")]


def test_envelope_keeps_encoded_words_and_reads_groups() -> None:
    env = read_envelope(crlf(
        "Subject: =?UTF-8?Q?caf=C3=A9?=\nFrom: =?UTF-8?Q?J=C3=BCrgen?= <j@example.test>\n"
        "To: Team: a@example.test;, undisclosed-recipients:;\n\n"))
    assert env[1] == "=?UTF-8?Q?caf=C3=A9?="
    assert env[2][0].name == "=?UTF-8?Q?J=C3=BCrgen?="
    assert env[5] == [Address(None, None, "Team", None), Address(None, None, "a", "example.test"),
                      Address(None, None, None, None),
                      Address(None, None, "undisclosed-recipients", None),
                      Address(None, None, None, None)]


def test_envelope_fills_in_broken_addresses_as_dovecot_does() -> None:
    env = read_envelope(crlf("From: just a name\nTo: user\nCc: <>\n\n"))
    assert env[2] == [Address("just a name", None, "MISSING_MAILBOX", "MISSING_DOMAIN")]
    assert env[5] == [Address(None, None, "user", "MISSING_DOMAIN")]
    assert env[6] == [Address(None, None, "MISSING_MAILBOX", "MISSING_DOMAIN")]


def test_an_envelope_is_stored_as_json_lists_and_renders_the_same_read_back() -> None:
    env = read_envelope(crlf("From: A <a@example.test>\nTo: b@example.test\n\nx\n"))
    stored = json.loads(json.dumps(env))
    assert stored[2] == [["A", None, "a", "example.test"]]
    assert envelope_sexp(stored) == envelope_sexp(env)


def test_envelope_sexp_unfolds_and_quotes() -> None:
    env = read_envelope(crlf("Date: Mon, 1 Jan 2024\n 10:00:00 +0000\n"
                             "Subject: a\tb\nMessage-ID: <\"x\"@y>\n\n"))
    assert envelope_sexp(env) == (
        b'("Mon, 1 Jan 2024 10:00:00 +0000" {3}\r\na b NIL NIL NIL NIL NIL NIL NIL '
        b'"<\\"x\\"@y>")')


def test_strings_are_quoted_until_a_literal_is_needed() -> None:
    assert string("plain") == b'"plain"'
    assert string('a"b\\c"d\\') == b'"a\\"b\\\\c\\"d\\\\"'  # four specials: still quoted
    assert string('""""""') == b'{6}\r\n""""""'  # more: a literal is shorter
    assert string("caf\u00e9") == b"{5}\r\ncaf\xc3\xa9"
    assert string("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert human_string("  spaced   out ") == b"{10}\r\nspaced out"
    assert human_string("tidy") == b'"tidy"'
    assert human_string(" \t") == b'""'


def test_header_bytes_that_are_not_utf8_survive_json_and_render_unchanged() -> None:
    value = text(b"Gr\xfc\xdfe \xc3\xa9")
    assert json.loads(json.dumps(value)) == value
    assert value.endswith("\u00e9")  # the valid UTF-8 part stays readable
    assert raw(value) == b"Gr\xfc\xdfe \xc3\xa9"
    env = read_envelope(b"Subject: Gr\xfc\xdfe\r\n\r\n")
    assert envelope_sexp(env) == b"(NIL {5}\r\nGr\xfc\xdfe NIL NIL NIL NIL NIL NIL NIL NIL)"


# -- Against Dovecot ----------------------------------------------------------------------

DOVECOT_IMAP = "/usr/lib/dovecot/imap"
MAIL_USER = "benchmail"  # unprivileged owner of the maildir (Dovecot refuses uid 0)

# Messages where Dovecot 2.3 answers differently for a reason we do not copy: for each,
# the items left out of the comparison and why; the tests above assert our answer.
_READS_PAST = "Dovecot reads a part header cut short by a boundary on, past the boundary"
DEVIATIONS: dict[str, dict[str, str]] = {
    "boundary_too_long": {
        "BODYSTRUCTURE": "Dovecot misses the closing delimiter of a >80 character boundary",
        "BODY": "the same",
    },
    "rfc822_truncated_by_boundary": {"BODY[1.HEADER.FIELDS.NOT (SUBJECT)]": _READS_PAST},
    "part_header_cut_by_boundary": {
        "BODY[1.HEADER.FIELDS (SUBJECT)]": _READS_PAST + ", up to the next blank line",
        "BODY[1.HEADER.FIELDS.NOT (SUBJECT)]": _READS_PAST + ", into the next part",
    },
}
DEVIATING_MESSAGES = [
    ("boundary_too_long", crlf(
        f"Content-Type: multipart/mixed; boundary={'x' * 90}\n\n"
        f"--{'x' * 90}\n\nonly part\n--{'x' * 90}--\n")),
    ("part_header_cut_by_boundary", crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Type: message/rfc822\n\nSubject: cut\nX-A: 1\n"
        "--b\nContent-Type: text/plain\n\nnext part\n--b--\n")),
]


def test_a_part_header_cut_by_a_boundary_ends_at_the_boundary() -> None:
    name, message = DEVIATING_MESSAGES[1]
    structure = mime.parse_structure(message)
    assert mime.section_bytes(message, structure, "1.HEADER.FIELDS.NOT (SUBJECT)") == \
        b"X-A: 1\r\n"
    assert mime.section_bytes(message, structure, "1.HEADER.FIELDS (SUBJECT)") == \
        b"Subject: cut\r\n"


def _mail_owner() -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(MAIL_USER)
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--shell", "/bin/false", MAIL_USER], check=True)
    return pwd.getpwnam(MAIL_USER)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[int]:
    """Dovecot's IMAP server on a loopback port, from a throwaway config; yield the port."""
    binary = require_program("dovecot")
    if not os.access(DOVECOT_IMAP, os.X_OK):
        require_program("dovecot-imapd (/usr/lib/dovecot/imap)")
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the Dovecot comparison runs as root (Dovecot drops privileges)")
        pytest.skip("the Dovecot comparison runs as root")
    owner = _mail_owner()
    # Not pytest's tmp_path: its parents are private to root, and the mail processes run
    # as MAIL_USER, so the whole path must be traversable.
    root = Path(tempfile.mkdtemp(prefix="mime-dovecot-"))
    root.chmod(0o755)
    home = root / "home"
    home.mkdir()
    os.chown(home, owner.pw_uid, owner.pw_gid)
    passwd = root / "passwd"
    passwd.write_text(f"tester:{{PLAIN}}secret:{owner.pw_uid}:{owner.pw_gid}::{home}::\n")
    passwd.chmod(0o644)
    port = free_port()  # Dovecot cannot tell which port it got
    conf = root / "dovecot.conf"
    conf.write_text(f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = {owner.pw_uid}
last_valid_uid = {owner.pw_uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
    with (root / "dovecot.out").open("ab") as out:
        proc = subprocess.Popen([binary, "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"Dovecot exited:\n{log()}")
            return listens(port)

        def log() -> str:
            return "\n" + (root / "dovecot.out").read_text(errors="replace")[-2000:]

        wait_until(up, "Dovecot to listen", 15, interval=0.05, details=log)
        yield port
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def _fetch(client: imaplib.IMAP4, number: int, item: str) -> bytes:
    """Return the raw bytes of one FETCH data item's value, literals put back in place."""
    typ, data = client.fetch(str(number), f"({item})")
    assert typ == "OK", data
    response = b"".join(el[0] + b"\r\n" + el[1] if isinstance(el, tuple) else el
                        for el in data if el is not None)
    match = re.match(rb"%d \((?:BODY\[[^\]]*\]|[A-Z]+) (.*)\)\Z" % number, response, re.DOTALL)
    assert match, response
    value = match[1]
    literal = re.match(rb"\{(\d+)\}\r\n", value)
    if item.startswith("BODY.PEEK["):
        if literal:
            return value[literal.end():]
        return b"" if value in (b'""', b"NIL") else value
    return value


def _sections(structure: dict) -> list[str]:
    """Sections worth fetching: the message's own, every part's, and one past the end."""
    specs = ["", "HEADER", "TEXT", "HEADER.FIELDS (SUBJECT FROM)",
             "HEADER.FIELDS.NOT (SUBJECT)"]

    def walk(container: dict, prefix: str) -> None:
        children = container["parts"] if container["kind"] == "multipart" else [container]
        for number, child in enumerate(children, 1):
            path = f"{prefix}{number}"
            specs.extend([path, f"{path}.MIME"])
            if child["kind"] == "message":
                specs.extend([f"{path}.HEADER", f"{path}.TEXT",
                              f"{path}.HEADER.FIELDS (SUBJECT)",
                              f"{path}.HEADER.FIELDS.NOT (SUBJECT)"])
                walk(child["message"], f"{path}.")
            elif child["kind"] == "multipart" and child is not container:
                walk(child, f"{path}.")
        specs.append(f"{prefix}{len(children) + 1}")

    walk(structure, "")
    return specs


COMPARED = CORPUS + DEVIATING_MESSAGES


@pytest.fixture(scope="module")
def dovecot_answers(dovecot: int) -> dict[str, dict[str, bytes]]:
    """APPEND every message to Dovecot and FETCH what we render; answers by message name."""
    client = imaplib.IMAP4("127.0.0.1", dovecot)
    try:
        client.login("tester", "secret")
        client.create("Corpus")
        for _, message in COMPARED:
            typ, data = client.append("Corpus", None, None, message)
            assert typ == "OK", data
        client.select("Corpus", readonly=True)
        answers: dict[str, dict[str, bytes]] = {}
        for number, (name, message) in enumerate(COMPARED, 1):
            structure = mime.parse_structure(message)
            got = answers[name] = {}
            for item in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
                got[item] = _fetch(client, number, item)
            for spec in _sections(structure):
                got[f"BODY[{spec}]"] = _fetch(client, number, f"BODY.PEEK[{spec}]")
        return answers
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def _ours(message: bytes, item: str) -> bytes:
    structure = mime.parse_structure(message)
    if item == "ENVELOPE":
        return envelope_sexp(read_envelope(message))
    if item in ("BODYSTRUCTURE", "BODY"):
        return bodystructure_sexp(structure, extensible=item == "BODYSTRUCTURE")
    return mime.section_bytes(message, structure, item[len("BODY["):-1])


def test_the_comparison_covers_enough_messages() -> None:
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("name,message", COMPARED, ids=[name for name, _ in COMPARED])
def test_answers_match_dovecot_byte_for_byte(
    name: str, message: bytes, dovecot_answers: dict[str, dict[str, bytes]],
) -> None:
    skipped = DEVIATIONS.get(name, {})
    mismatches = {
        item: (_ours(message, item), theirs)
        for item, theirs in dovecot_answers[name].items()
        if item not in skipped and _ours(message, item) != theirs
    }
    assert not mismatches, "\n".join(
        f"{item}:\n  ours:    {ours!r}\n  dovecot: {theirs!r}"
        for item, (ours, theirs) in mismatches.items())
    for item in skipped:  # the deviation is still there; otherwise drop it from DEVIATIONS
        assert _ours(message, item) != dovecot_answers[name].get(item), item


TOP_SECTIONS = ("", "HEADER", "TEXT", "HEADER.FIELDS (FROM SUBJECT DATE)",
                "HEADER.FIELDS.NOT (RECEIVED CONTENT-TYPE)", "HEADER.FIELDS (X-FOLDED)")


def test_sections_of_the_message_itself_need_no_structure() -> None:
    """FETCH of BODY[HEADER.FIELDS ...] and the like skips loading the body structure.

    What it reads from the raw message alone must be what the structure gives, on the
    corpus and on damaged messages (no blank line, bare LF, a header only).
    """
    rng = random.Random(7)
    samples = [message for _, message in CORPUS] + [
        b"Subject: no body", b"Subject: bare\nX-Folded: a\n b\n\nbody\n", b"", b"\r\n",
        b"\r\nbody only\r\n", b"no colon line\r\nSubject: x\r\n\r\n", NESTED]
    for message in list(samples):
        data = bytearray(message)
        for _ in range(3):
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.choice([b"\r\n", b"\n", b"\r\n\r\n", b" folded", b":"])
        samples.append(bytes(data))
    for message in samples:
        structure = mime.parse_structure(message)
        for spec in TOP_SECTIONS:
            reader = mime.SectionReader(spec)
            assert not reader.needs_structure
            assert reader(message, None) == reader(message, structure), (spec, message[:80])


def test_a_part_section_needs_the_structure() -> None:
    reader = mime.SectionReader("2.HEADER")
    assert reader.needs_structure
    assert reader(NESTED, mime.parse_structure(NESTED)) == crlf(
        "Subject: inner\nContent-Type: multipart/alternative; boundary=i\n\n")
    with pytest.raises(ValueError):
        reader(NESTED, None)


def test_field_spans_reads_headers_as_read_header_does() -> None:
    """BODY[HEADER.FIELDS] picks fields by the names and spans read_header finds."""
    from mailcore.message.header import field_name, field_spans, read_header

    rng = random.Random(11)
    samples = [message for _, message in CORPUS] + [
        b"", b"\n", b"\r\n", b"Subject:x", b"No colon\r\n\tfolded\r\nA : b\r\n\r\nbody",
        b"X:\r\n \r\n\t\r\n\r\n", b"Bare: lf\nFolded: a\n b\n\nbody", b"CR: only\rstill\r\n"]
    for message in list(samples):
        for _ in range(4):
            data = bytearray(message)
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.choice([b"\r\n", b"\n", b" ", b":", b"\t", b"\r\n\r\n", b"x"])
            samples.append(bytes(data))
    for message in samples:
        for start, end in ((0, len(message)), (0, len(message) // 2),
                           (len(message) // 3, len(message))):
            header = read_header(message, start, end)
            fields, stop, blank_line = field_spans(message, start, end)
            assert fields == [(field_name(f).upper(), f.start, f.end) for f in header.fields]
            assert (stop, blank_line) == (header.end, header.blank_line), message


KEPT_HEADER_SECTIONS = (
    "HEADER", "HEADER.FIELDS (FROM SUBJECT DATE)", "HEADER.FIELDS (from Subject dAtE)",
    "HEADER.FIELDS (X-FOLDED)", "HEADER.FIELDS (X-MISSING)", "HEADER.FIELDS (CLASS)",
    "HEADER.FIELDS (X-8BIT SUBJECT)", 'HEADER.FIELDS ("X.Dot" A+B)',
    "HEADER.FIELDS.NOT (SUBJECT)", "HEADER.FIELDS.NOT (received CONTENT-TYPE)",
    "HEADER.FIELDS.NOT (X-MISSING)", "HEADER.FIELDS.NOT (X-FOLDED FROM)",
)


def test_sections_from_the_kept_header_block_are_those_of_the_whole_message() -> None:
    """FETCH of the message's own header sections from Message.header, byte for byte.

    From the header block alone (with its regular expression for field names) the
    answer is the one the whole message gives: folded fields, missing ones, 8-bit
    headers, names in any case and with white space before the colon, "ß" (which
    upper-cases to "SS"), a header without a blank line, bare LFs.
    """
    rng = random.Random(13)
    samples = [message for _, message in CORPUS] + [
        b"", b"\n", b"\r\n", b"Subject: no body", b"Subject: no body\r\n",
        b"Subject: bare\nX-Folded: a\n b\n\nbody\n",
        b"From: a@b\r\nX-Folded: one\r\n two\r\n\tthree\r\nSubject: s\r\n\r\nbody\r\n",
        b"SUBJECT: upper\r\nsubject: lower\r\nSubject \t: spaced\r\n\r\n",
        b"X-8bit: caf\xc3\xa9\r\nSubject: \xe9t\xe9\r\nFr\xf6m: x\r\n\r\nbody",
        b"Cla\xdf: eszett\r\nClass: plain\r\nSubject: s\r\n\r\n",
        b"no colon line\r\nSubject: x\r\n\r\n", b" Subject: indented first\r\n\r\n",
        b"X.Dot: 1\r\nA+B: 2\r\nAxB: 3\r\nX-Dot: 4\r\n\r\n",
        b"Subject:x\r\n \r\n\r\nbody", b"Subject: cr\rSubject: still\r\n\r\n",
        b"X-Folded: last\r\n folded", NESTED]
    for message in list(samples):
        for _ in range(3):
            data = bytearray(message)
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.choice([b"\r\n", b"\n", b"\r\n\r\n", b" folded", b":", b"\t"])
            samples.append(bytes(data))
    for message in samples:
        structure = mime.parse_structure(message)
        block = message[:mime.header_end(message)]
        assert block == message[:structure["header"][1]]
        for spec in KEPT_HEADER_SECTIONS:
            reader = mime.SectionReader(spec)
            assert reader.of_header
            assert reader.from_header(block) == reader(message, structure), (spec, message)
            assert reader.from_headers([block, block]) == [reader.from_header(block)] * 2


def test_only_the_message_s_own_header_sections_come_from_its_header_block() -> None:
    assert not mime.SectionReader("TEXT").of_header
    assert not mime.SectionReader("").of_header
    assert not mime.SectionReader("1.HEADER").of_header
    assert not mime.SectionReader("2.HEADER.FIELDS (SUBJECT)").of_header


@pytest.mark.parametrize("name,message", COMPARED, ids=[name for name, _ in COMPARED])
def test_header_sections_from_the_kept_block_match_dovecot(
    name: str, message: bytes, dovecot_answers: dict[str, dict[str, bytes]],
) -> None:
    block = message[:mime.header_end(message)]
    skipped = DEVIATIONS.get(name, {})
    compared = 0
    for item, theirs in dovecot_answers[name].items():
        spec = item[len("BODY["):-1]
        if not item.startswith("BODY[HEADER") or item in skipped:
            continue
        assert mime.SectionReader(spec).from_header(block) == theirs, item
        compared += 1
    assert compared == 3
