"""IMAP SORT and THREAD (RFC 5256), SORT=DISPLAY (RFC 5957): the RFCs' examples, over a socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailcore.imap.sort_command import thread_lists
from mailcore.message import threads
from mailcore.message.sortkeys import base_subject, casemap, header_sort_fields
from mailcore.message.threads import Node, ThreadMessage
from mailcore.models import Folder, Message
from mailcore.store.delivery import deliver
from tests.imap_client import connect, selected


def raw(subject: str, day: int, *, sender: str = "Sender <sender@remote.test>",
        to: str = "alice@example.test", extra: str = "", message_id: str | None = None,
        body: str = "hello") -> bytes:
    date = datetime(2024, 3, day, 12, 0, tzinfo=UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    own = f"Message-ID: <{message_id}>\r\n" if message_id else ""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n{own}"
            f"{extra}\r\n{body}\r\n").encode()


def put(alice, *messages: bytes) -> None:
    for m in messages:
        deliver(m, "s@remote.test", [alice.pk])


def answer(client, command: str, name: str) -> str:
    untagged, done = client.run(command)
    assert done.startswith("OK "), done
    assert len(untagged) == 1 and untagged[0].startswith(f"* {name}"), untagged
    return untagged[0][len(f"* {name}"):].strip()


# Base subjects (RFC 5256 section 2.1) ----------------------------------------------------

@pytest.mark.parametrize("subject,base,reply", [
    ("Re: test", "test", True),
    ("RE: Re: [list] Fwd: hello (fwd)", "hello", True),
    ("[fwd: Re: Hi]", "Hi", True),
    ("[list] [other] subject", "subject", False),
    ("[only a blob]", "[only a blob]", False),
    ("Re[2]: counted", "counted", True),
    ("  spaced   out  ", "spaced out", False),
    ("Fw:", "", True),
    ("Fwd : x", "x", True),  # subj-refwd allows white space before the colon
    ("Ref: x", "Ref: x", False),
])
def test_base_subject(subject, base, reply):
    assert base_subject(subject) == (base, reply)


def test_casemap_is_titlecase_then_decomposed():
    assert casemap("abc") == "ABC"
    assert casemap("é") == "E\u0301"
    assert casemap("ß") == "ß"


def test_sort_keys_come_from_the_first_address_and_decoded_names():
    fields = header_sort_fields(
        b"From: =?utf-8?q?J=C3=B6rg?= <joerg@x.test>, other@x.test\r\n"
        b"To: undisclosed-recipients:;, bee@c.test\r\nCc: <zed@y.test>\r\n"
        b"References: <a@b>\r\n <c@d>\r\nIn-Reply-To: <q@r>\r\n\r\n", "Re: hi")
    assert fields == {
        "sort_subject": "HI", "sort_from": "JOERG", "sort_to": "BEE", "sort_cc": "ZED",
        "sort_display_from": "JO\u0308RG", "sort_display_to": "BEE@C.TEST",
        "thread_refs": "<a@b> <c@d>",
    }


def test_in_reply_to_counts_when_there_are_no_references():
    fields = header_sort_fields(b"In-Reply-To: <q@r> <s@t>\r\n\r\n", "")
    assert fields["thread_refs"] == "<q@r>"


# SORT -------------------------------------------------------------------------------------

@pytest.fixture
def five(alice):
    """RFC 5256's "SORT (SUBJECT REVERSE DATE)" example: the answer is 5 3 4 1 2."""
    put(alice,
        raw("c", 5, sender="Zed <aaa@remote.test>", to="m@x.test", body="x" * 500),
        raw("RE: [x] C", 1, sender="yan@remote.test", to="k@x.test", extra="Cc: b@x.test\r\n"),
        raw("[list] B (fwd)", 4, sender="Xavier <ccc@remote.test>", to="l@x.test",
            body="x" * 100),
        raw("Fwd: b", 2, sender="Will <ddd@remote.test>", to="j@x.test",
            extra="Cc: a@x.test\r\n"),
        raw("Re: a", 3, sender="Vic <eee@remote.test>", to="n@x.test", body="x" * 50))
    return alice


def test_sort_subject_then_reverse_date_is_the_rfc_example(server, five):
    client = selected(server)
    assert answer(client, "SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "SORT") == "5 3 4 1 2"


@pytest.mark.parametrize("criteria,expected", [
    ("ARRIVAL", "1 2 3 4 5"), ("REVERSE ARRIVAL", "5 4 3 2 1"),
    ("DATE", "2 4 5 3 1"), ("REVERSE DATE", "1 3 5 4 2"),
    ("FROM", "1 3 4 5 2"), ("DISPLAYFROM", "5 4 3 2 1"),
    ("TO", "4 2 3 1 5"), ("DISPLAYTO", "4 2 3 1 5"),
    ("CC", "1 3 5 4 2"),  # no Cc sorts as the empty string, first; ties in mailbox order
    ("SIZE", "2 4 5 3 1"), ("REVERSE SIZE", "1 3 5 4 2"),
    ("SUBJECT ARRIVAL", "5 3 4 1 2"), ("REVERSE SUBJECT ARRIVAL", "1 2 3 4 5"),
])
def test_sort_criteria(server, five, criteria, expected):
    client = selected(server)
    assert answer(client, f"SORT ({criteria}) UTF-8 ALL", "SORT") == expected


def test_sort_with_search_criteria_and_no_match(server, five):
    client = selected(server)
    assert answer(client, "SORT (SUBJECT) UTF-8 SINCE 1-Jan-2000 SENTSINCE 3-Mar-2024",
                  "SORT") == "5 3 1"
    # RFC 5256 section 3's third example: nothing matches, an empty SORT response.
    assert client.run('SORT (SUBJECT) US-ASCII TEXT "not in mailbox"') == (
        ["* SORT"], "OK SORT completed")


def test_uid_sort_answers_uids_and_sequence_numbers_follow_expunges(server, five):
    client = selected(server)
    client.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    client.ok("EXPUNGE")
    assert answer(client, "SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "SORT") == "4 2 3 1"
    assert answer(client, "UID SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "SORT") == "5 3 4 2"
    assert answer(client, "UID SORT (SIZE) UTF-8 2:3", "SORT") == "4 3"


def test_sort_with_a_modseq_key_reports_the_highest_modseq(server, five):
    client = selected(server)
    client.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    modseq = Message.objects.get(folder__mailbox=five, uid=2).modseq
    untagged, done = client.run("SORT (ARRIVAL) UTF-8 MODSEQ 1")
    assert done.startswith("OK "), done
    # The first command that enables CONDSTORE says the folder's mod-sequence first
    # (RFC 7162 section 3.1).
    highest = Folder.objects.get(mailbox=five, name="INBOX").highestmodseq
    assert untagged == [f"* OK [HIGHESTMODSEQ {highest}] Highest mod-sequence",
                        f"* SORT 1 2 3 4 5 (MODSEQ {modseq})"]


@pytest.mark.parametrize("command,reply", [
    ("SORT (SUBJECT) ALL", "BAD"),  # the charset is not optional: "ALL" is taken for it
    ("SORT SUBJECT UTF-8 ALL", "BAD"),
    ("SORT () UTF-8 ALL", "BAD"),
    ("SORT (SENDER) UTF-8 ALL", "BAD"),
    ("SORT (REVERSE) UTF-8 ALL", "BAD"),
    ("SORT (SUBJECT) UTF-8", "BAD"),
    ("SORT (SUBJECT) X-UNKNOWN ALL", "NO [BADCHARSET"),
    ("THREAD UNKNOWN UTF-8 ALL", "BAD"),
    ("THREAD REFERENCES ALL", "BAD"),
])
def test_malformed_sort_and_thread(server, five, command, reply):
    client = selected(server)
    untagged, done = client.run(command)
    assert done.startswith(reply), done
    assert not any(u.startswith(("* SORT", "* THREAD")) for u in untagged)


def test_sort_and_thread_need_a_selected_folder(server, five):
    client = connect(server, login=True)
    assert client.run("SORT (SUBJECT) UTF-8 ALL")[1].startswith("BAD")
    assert client.run("THREAD REFERENCES UTF-8 ALL")[1].startswith("BAD")


def test_capabilities_advertise_sort_and_thread(server, alice):
    client = connect(server, login=True)
    untagged, _ = client.run("CAPABILITY")
    caps = untagged[0].split()
    assert {"SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"} <= set(caps)


def test_sort_sees_only_its_own_mailbox(server, five, bob):
    deliver(raw("bob's", 1), "s@remote.test", [bob.pk])
    client = selected(server)
    assert answer(client, "SORT (ARRIVAL) UTF-8 ALL", "SORT") == "1 2 3 4 5"


# THREAD -----------------------------------------------------------------------------------

@pytest.fixture
def conversations(alice):
    def refs(*ids: str) -> str:
        return "References: " + " ".join(f"<{i}>" for i in ids) + "\r\n"

    put(alice,
        raw("hello", 1, message_id="1@x"),
        raw("Re: hello", 2, message_id="2@x", extra=refs("1@x")),
        raw("Re: hello", 3, message_id="3@x", extra="In-Reply-To: <1@x>\r\n"),
        raw("other", 4, message_id="4@x", extra=refs("gone@x")),
        raw("Re: other", 5, message_id="5@x", extra=refs("gone@x")),
        raw("Re: hello", 6, message_id="6@x"),
        raw("chain", 7, message_id="7@x"),
        raw("Re: chain", 8, message_id="8@x", extra=refs("7@x")),
        raw("Re: chain", 9, message_id="9@x", extra=refs("7@x", "8@x")))
    return alice


def test_thread_references(server, conversations):
    client = selected(server)
    assert answer(client, "THREAD REFERENCES UTF-8 ALL", "THREAD") == \
        "(1 (2)(3)(6))((4)(5))(7 8 9)"


def test_thread_orderedsubject(server, conversations):
    client = selected(server)
    assert answer(client, "THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD") == \
        "(1 (2)(3)(6))(4 5)(7 (8)(9))"


def test_thread_on_search_results_and_uids(server, conversations):
    client = selected(server)
    client.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    client.ok("EXPUNGE")
    # The parent left: its replies meet under a dummy, then merge by subject (step 5).
    assert answer(client, "THREAD REFERENCES UTF-8 ALL", "THREAD") == \
        "((1)(2)(5))((3)(4))(6 7 8)"
    assert answer(client, "UID THREAD REFERENCES UTF-8 ALL", "THREAD") == \
        "((2)(3)(6))((4)(5))(7 8 9)"
    assert answer(client, "UID THREAD ORDEREDSUBJECT UTF-8 SUBJECT chain", "THREAD") == \
        "(7 (8)(9))"
    # RFC 5256 section 3's example of no match.
    assert client.run('THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"') == (
        ["* THREAD"], "OK THREAD completed")


def test_thread_survives_reference_loops_and_deep_chains(server, alice):
    put(alice,
        raw("a", 1, message_id="a@x", extra="References: <b@x>\r\n"),
        raw("b", 2, message_id="b@x", extra="References: <a@x>\r\n"))
    depth = 1500
    template = Message.objects.filter(folder__mailbox=alice).first()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    Message.objects.bulk_create([
        Message(folder=template.folder, uid=10 + n, blob_id=template.blob_id, size=10,
                modseq=10 + n, internal_date=start + timedelta(minutes=n),
                subject=f"deep {n}", message_id=f"<d{n}@x>",
                thread_refs=f"<d{n - 1}@x>" if n else "")
        for n in range(depth)])
    client = selected(server)
    threads = answer(client, "THREAD REFERENCES UTF-8 ALL", "THREAD")
    # The chain (sent dates: none, so the older internal dates) first; "b" refers to "a",
    # which already hangs below it, so that link is not made.
    assert threads == "(" + " ".join(str(n) for n in range(3, depth + 3)) + ")(2 1)"


def test_thread_response_format_is_the_rfcs():
    # RFC 5256 section 4: "(2)(3 6 (4 23)(44 7 96))" and a dummy parent "((3)(5))".
    def node(number, *children):
        return Node(number, list(children))

    roots = [node(2), node(3, node(6, node(4, node(23)), node(44, node(7, node(96)))))]
    assert thread_lists(roots, lambda n: n) == b"(2)(3 6 (4 23)(44 7 96))"
    assert thread_lists([node(None, node(3), node(5))], lambda n: n) == b"((3)(5))"
    assert thread_lists([], lambda n: n) == b""


# ESORT (RFC 5267 section 3) ---------------------------------------------------------------

@pytest.mark.parametrize("command,expected", [
    # MIN and MAX are the first and the last in sort order, not the lowest numbers.
    ("SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", '(TAG "{tag}") MIN 2 MAX 1 COUNT 5'),
    ("SORT RETURN (MIN) (REVERSE DATE) UTF-8 SENTBEFORE 5-Mar-2024", '(TAG "{tag}") MIN 3'),
    # ALL lists them in sort order; only ascending runs become ranges.
    ("SORT RETURN (ALL) (SUBJECT REVERSE DATE) UTF-8 ALL", '(TAG "{tag}") ALL 5,3:4,1:2'),
    ("SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL", '(TAG "{tag}") ALL 5,4,3,2,1'),
    ("UID SORT RETURN (COUNT ALL) (DATE) UTF-8 ALL", '(TAG "{tag}") UID COUNT 5 ALL 2,4:5,3,1'),
    ("SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 SUBJECT nothing", '(TAG "{tag}") COUNT 0'),
])
def test_esort(server, five, command, expected):
    client = selected(server)
    tag = client.next_tag()
    verb = "UID SORT" if command.startswith("UID") else "SORT"
    assert client.run(command, tag=tag) == (
        ["* ESEARCH " + expected.format(tag=tag)], f"OK {verb} completed")


def test_esort_save_keeps_what_min_and_max_return(server, five):
    client = selected(server)
    assert client.run("SORT RETURN (SAVE MIN MAX) (DATE) UTF-8 ALL")[1] == "OK SORT completed"
    assert answer(client, "SEARCH $", "SEARCH") == "1 2"
    assert client.run("SORT RETURN (SAVE) (SIZE) UTF-8 LARGER 400") == (
        [], "OK SORT completed")
    assert answer(client, "SEARCH $", "SEARCH") == "1"
    # A failed SORT RETURN (SAVE) empties "$" (RFC 5182 section 2.1).
    assert client.run("SORT RETURN (SAVE) (BOGUS) UTF-8 ALL")[1].startswith("BAD")
    assert answer(client, "SEARCH $", "SEARCH") == ""


def test_esort_and_contexts_are_advertised(server, alice):
    caps = connect(server, login=True).run("CAPABILITY")[0][0].split()
    assert "ESORT" in caps
    assert "CONTEXT=SEARCH" in caps and "CONTEXT=SORT" in caps


def _messages(*subjects: str) -> list[ThreadMessage]:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    return [ThreadMessage(n, f"{n}@x", (), casemap(base_subject(s)[0]), base_subject(s)[1],
                          day + timedelta(days=n)) for n, s in enumerate(subjects, 1)]


def test_references_gathers_unrelated_threads_by_subject():
    # Step 5: two originals share a dummy; a reply joins the original under it, even
    # when it came first; distinct subjects stay apart.
    def lists(*subjects: str) -> bytes:
        return thread_lists(threads.references(_messages(*subjects)), lambda n: n)

    assert lists("Hello", "hello") == b"((1)(2))"
    assert lists("Re: x", "x", "y") == b"(2 1)(3)"
    assert lists("Re: x", "Re: x") == b"((1)(2))"
    assert lists("", "") == b"(1)(2)"  # no subject: nothing to gather by
