"""IMAP SEARCH: every RFC 3501 key, ESEARCH and SAVE, and a large folder searched in SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mailcore.imap.parser import parse_command
from mailcore.models import Folder, Message
from mailcore.store import search as store_search
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from tests.imap_client import bulk_fill, connect, message, selected


@pytest.fixture
def mail(alice):
    """Five messages with distinct flags, sizes, dates, headers and bodies."""
    deliver(message(1, subject="Quarterly report", body="numbers inside"),
            "s@remote.test", [alice.pk])
    deliver(message(2, subject="Lunch?", body="pizza or sushi",
                    extra="Cc: Dave <dave@example.test>\r\nX-Priority: 1\r\n"),
            "s@remote.test", [alice.pk])
    deliver(b"From: bob@example.test\r\nTo: alice@example.test\r\nBcc: eve@example.test\r\n"
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\nDate: Wed, 3 Jan 2024 08:00:00 +0000\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
            b"\r\nQm9uam91ciDDoCB0b3Vz\r\n", "s@remote.test", [alice.pk])
    deliver(message(4, body="x" * 3000), "s@remote.test", [alice.pk])
    deliver(message(5, subject="Re: Quarterly report"), "s@remote.test", [alice.pk])
    rows = Message.objects.filter(folder__mailbox=alice)
    rows.filter(uid=1).update(seen=True, flagged=True)
    rows.filter(uid=2).update(answered=True, keywords=["$Work"])
    rows.filter(uid=3).update(deleted=True, draft=True,
                              internal_date=datetime(2024, 1, 3, 9, 0, tzinfo=UTC))
    rows.filter(uid=4).update(internal_date=datetime(2023, 6, 1, 12, 0, tzinfo=UTC))
    return alice


def search(client, program: str) -> str:
    untagged, done = client.run(f"SEARCH {program}")
    assert done == "OK SEARCH completed", done
    assert len(untagged) == 1 and untagged[0].startswith("* SEARCH"), untagged
    return untagged[0][len("* SEARCH"):].strip()


KEYS = [
    ("ALL", "1 2 3 4 5"),
    ("SEEN", "1"), ("UNSEEN", "2 3 4 5"), ("FLAGGED", "1"), ("UNFLAGGED", "2 3 4 5"),
    ("ANSWERED", "2"), ("UNANSWERED", "1 3 4 5"), ("DELETED", "3"), ("UNDELETED", "1 2 4 5"),
    ("DRAFT", "3"), ("UNDRAFT", "1 2 4 5"),
    ("RECENT", "1 2 3 4 5"), ("NEW", "2 3 4 5"), ("OLD", ""),  # the first SELECT takes \\Recent
    ("KEYWORD $Work", "2"), ("KEYWORD $work", "2"), ("UNKEYWORD $Work", "1 3 4 5"),
    ("SUBJECT quarterly", "1 5"), ('SUBJECT "café"', "3"), ("FROM bob@", "3"),
    ("FROM Sender", "1 2 4 5"), ("TO alice", "1 2 3 4 5"), ("CC dave", "2"), ("BCC eve", "3"),
    ("HEADER X-Priority 1", "2"), ('HEADER X-Priority ""', "2"), ("HEADER Message-ID <4@", "4"),
    ("BODY pizza", "2"), ("BODY bonjour", "3"), ("BODY Quarterly", ""),
    ("TEXT Quarterly", "1 5"), ("TEXT sushi", "2"),
    ("LARGER 1000", "4"), ("SMALLER 190", "1 5"),
    ("BEFORE 1-Jan-2024", "4"), ("ON 3-Jan-2024", "3"), ("SINCE 4-Jan-2024", "1 2 5"),
    ("SENTBEFORE 1-Jan-2000", "1 2 4 5"), ("SENTON 3-Jan-2024", "3"),
    ("SENTSINCE 2-Jan-2024", "3"),
    ("OLDER 86400", "3 4"), ("YOUNGER 86400", "1 2 5"),
    ("2:4", "2 3 4"), ("4:*", "4 5"), ("*", "5"), ("UID 1,3", "1 3"), ("UID 4:*", "4 5"),
    ("NOT SEEN", "2 3 4 5"), ("OR SEEN DELETED", "1 3"), ("OR BODY pizza SEEN", "1 2"),
    ("NOT BODY pizza", "1 3 4 5"), ("(SEEN FLAGGED) SUBJECT report", "1"),
    ("NOT (OR SEEN ANSWERED)", "3 4 5"), ("OR (BCC eve) (HEADER X-Priority 1)", "2 3"),
    ("NOT ALL", ""), ("OR ALL SEEN", "1 2 3 4 5"), ("NOT NOT 1", "1"),
]


@pytest.mark.parametrize("program,expected", KEYS)
def test_search_keys(server, mail, program, expected):
    client = selected(server)
    assert search(client, program) == expected


def test_uid_search_answers_uids(server, mail):
    client = selected(server)
    client.ok("STORE 1 +FLAGS (\\Deleted)")
    client.ok("UID EXPUNGE 1")
    assert client.run("UID SEARCH UNSEEN") == (["* SEARCH 2 3 4 5"], "OK UID SEARCH completed")
    assert search(client, "UNSEEN") == "1 2 3 4"
    assert search(client, "1") == "1" and client.ok("UID SEARCH 1") == ["* SEARCH 2"]


def test_search_charset(server, mail):
    client = selected(server)
    assert search(client, 'CHARSET UTF-8 SUBJECT "café"') == "3"
    client.send(b'a1 SEARCH CHARSET ISO-8859-1 SUBJECT "caf\xe9"\r\n')
    assert client.collect("a1") == (["* SEARCH 3"], "OK SEARCH completed")
    assert client.run("SEARCH CHARSET KLINGON ALL")[1] == (
        "NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset")


def test_search_literal_string(server, mail):
    client = selected(server)
    client.send(b"a1 SEARCH SUBJECT {5}\r\n")
    assert client.raw_line() == b"+ Ready for literal data\r\n"
    client.send(b"Lunch\r\n")
    assert client.collect("a1") == (["* SEARCH 2"], "OK SEARCH completed")


def test_esearch_return_options(server, mail):
    client = selected(server)
    assert client.run("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN") == (
        ['* ESEARCH (TAG "t3") MIN 2 MAX 5 COUNT 4 ALL 2:5'], "OK SEARCH completed")
    assert client.ok("UID SEARCH RETURN () SEEN") == ['* ESEARCH (TAG "t4") UID ALL 1']
    assert client.ok("SEARCH RETURN (COUNT) OLD") == ['* ESEARCH (TAG "t5") COUNT 0']
    assert client.ok("SEARCH RETURN (MIN MAX) OLD") == ['* ESEARCH (TAG "t6")']
    assert client.run("SEARCH RETURN (BOGUS) ALL")[1].startswith("BAD Syntax error")


def test_imap4rev2_answers_with_esearch(server, mail):
    client = selected(server, enable="IMAP4rev2")
    assert client.ok("SEARCH UNSEEN") == ['* ESEARCH (TAG "t4") ALL 2:5']


def test_saved_search_result_is_dollar(server, mail):
    client = selected(server)
    assert client.ok("SEARCH RETURN (SAVE) UNSEEN") == []
    assert client.ok("FETCH $ (UID)") == [f"* {n} FETCH (UID {n})" for n in range(2, 6)]
    assert client.ok("SEARCH RETURN (SAVE MIN) UNSEEN") == ['* ESEARCH (TAG "t5") MIN 2']
    assert client.ok("UID FETCH $ (FLAGS)") == [
        "* 2 FETCH (UID 2 FLAGS (\\Answered $Work \\Recent))"]
    assert search(client, "$") == "2"
    assert search(client, "OR $ 1") == "1 2"
    assert client.run("SEARCH RETURN (SAVE) CHARSET KLINGON ALL")[1].startswith("NO")
    assert client.ok("FETCH $ (UID)") == []


def test_search_with_modseq_reports_the_highest(server, mail):
    client = selected(server)
    highest = Message.objects.get(uid=5).modseq
    assert client.ok("SEARCH MODSEQ 1") == [
        f"* OK [HIGHESTMODSEQ {highest}] Highest mod-sequence",  # RFC 7162 section 3.1
        f"* SEARCH 1 2 3 4 5 (MODSEQ {highest})"]
    assert client.ok("SEARCH RETURN (COUNT) MODSEQ 1") == [
        f'* ESEARCH (TAG "t4") COUNT 5 MODSEQ {highest}']


def test_search_needs_a_key(server, mail):
    client = selected(server)
    assert client.run("SEARCH")[1].startswith("BAD Syntax error")
    assert client.run("SEARCH UNKNOWNKEY")[1].startswith("BAD Syntax error")


def test_a_message_arriving_during_the_session_is_not_found_until_announced(server, mail):
    client = selected(server)
    from mailcore.store.messages import append

    append(Folder.objects.get(mailbox=mail, name="INBOX").pk, message(6))
    assert client.run("UID SEARCH ALL")[0][0] == "* SEARCH 1 2 3 4 5"


# A large folder ------------------------------------------------------------------------

def key_of(program: str):
    return parse_command(f"a SEARCH {program}\r\n".encode()).args.key


def test_a_large_folder_is_searched_in_one_query(alice):
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    bulk_fill(inbox, 5000)
    with CaptureQueriesContext(connection) as queries:
        found = store_search.search(
            inbox.pk, key_of("UNSEEN FLAGGED LARGER 2000 SINCE 1-Mar-2024 NOT KEYWORD $Big "
                             "OR SUBJECT 4 SUBJECT 5"), 5000)
    assert len(queries) == 1
    expected = [n for n in range(1, 5001) if n % 2 and n % 100 == 0 and 1000 + n > 2000]
    assert [uid for uid, _ in found] == [
        n for n in expected if n >= 1440 and n % 1000 and ("4" in str(n) or "5" in str(n))]


def test_text_keys_open_only_the_candidates(alice, monkeypatch):
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    bulk_fill(inbox, 3000)
    opened = []
    real = blob_store()

    class Counting:
        def get(self, key):
            opened.append(key)
            return real.get(key)

    monkeypatch.setattr(store_search, "blob_store", lambda: Counting())
    found = store_search.search(inbox.pk, key_of("FLAGGED BODY body"), 3000)
    assert [uid for uid, _ in found] == list(range(100, 3001, 100))
    assert len(opened) == 30


def test_a_sequence_set_of_many_ranges_is_checked_in_python(alice):
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    bulk_fill(inbox, 2000)
    odd = ",".join(str(n) for n in range(1, 2000, 2))
    found = store_search.search(inbox.pk, key_of(f"UID {odd} SEEN"), 2000)
    assert found == []
    found = store_search.search(inbox.pk, key_of(f"UID {odd} NOT SEEN"), 2000)
    assert len(found) == 1000


def test_search_over_a_large_folder_through_the_server(server, alice):
    bulk_fill(Folder.objects.get(mailbox=alice, name="INBOX"), 3000)
    client = connect(server, login=True)
    client.ok("SELECT INBOX")
    assert client.ok("SEARCH RETURN (COUNT MIN MAX) UNSEEN") == [
        '* ESEARCH (TAG "t3") MIN 1 MAX 2999 COUNT 1500']
    assert client.ok("UID SEARCH RETURN (ALL) 2990:* SEEN") == [
        '* ESEARCH (TAG "t4") UID ALL 2990,2992,2994,2996,2998,3000']
    assert client.ok("STORE 1:* +FLAGS.SILENT (\\Seen)") == []
    assert client.ok("SEARCH RETURN (COUNT) UNSEEN") == ['* ESEARCH (TAG "t6") COUNT 0']


# Deep programs ----------------------------------------------------------------------------
# Each leaf with the UIDs of the `mail` fixture it matches: checked in SQL, in Python
# (BODY, BCC), or both, so deep trees mix the two evaluations.
LEAVES = {
    "SEEN": {1}, "DELETED": {3}, "ANSWERED": {2}, "LARGER 1000": {4}, "ALL": {1, 2, 3, 4, 5},
    "SUBJECT quarterly": {1, 5}, "UID 2:3": {2, 3}, "ON 3-Jan-2024": {3},
    "KEYWORD $Work": {2}, "BODY pizza": {2}, "BCC eve": {3}, "NOT ALL": set(),
    "KEYWORD $None": set(),
}
EVERY_UID = {1, 2, 3, 4, 5}


def uids_of(found: list[tuple[int, int]]) -> set[int]:
    return {uid for uid, _ in found}


def store_search_uids(mail, program: str) -> set[int]:
    inbox = Folder.objects.get(mailbox=mail, name="INBOX")
    return uids_of(store_search.search(inbox.pk, key_of(program), 5))


def nested_nots(depth: int, leaf: str = "SEEN") -> str:
    return "NOT " * depth + leaf


def chained_ors(count: int, leaves: list[str]) -> tuple[str, set[int]]:
    """Return "OR a OR b ... z" with count ORs, and the UIDs it matches."""
    picked = [leaves[i % len(leaves)] for i in range(count + 1)]
    program = "".join(f"OR {leaf} " for leaf in picked[:-1]) + picked[-1]
    return program, set().union(*(LEAVES[leaf] for leaf in picked))


def alternating(depth: int, leaves: list[str]) -> tuple[str, set[int]]:
    """Return NOT OR a NOT OR b ... nested depth deep (NOT and OR alternating), and its UIDs."""
    program, expected = leaves[depth % len(leaves)], LEAVES[leaves[depth % len(leaves)]]
    for level in range(depth):
        leaf = leaves[level % len(leaves)]
        if level % 2:
            program, expected = f"OR {leaf} {program}", LEAVES[leaf] | expected
        else:
            program, expected = f"NOT {program}", EVERY_UID - expected
    return program, expected


def random_program(rng, depth: int, nodes: list[int]) -> tuple[str, set[int]]:
    """Return a random program up to depth levels deep, and the UIDs it matches.

    nodes holds how many more operators the program may have, so it stays small.
    """
    choice = rng.random()
    if depth <= 0 or nodes[0] <= 0 or choice < 0.15:
        leaf = rng.choice(sorted(LEAVES))
        return leaf, LEAVES[leaf]
    nodes[0] -= 1
    if choice < 0.5:
        program, expected = random_program(rng, depth - 1, nodes)
        return f"NOT {program}", EVERY_UID - expected
    if choice < 0.85:
        left, left_uids = random_program(rng, depth - 1, nodes)
        right, right_uids = random_program(rng, depth - 1, nodes)
        return f"OR {left} {right}", left_uids | right_uids
    parts = [random_program(rng, depth - 1, nodes) for _ in range(rng.randint(1, 3))]
    return ("(" + " ".join(p for p, _ in parts) + ")",
            set.intersection(*(uids for _, uids in parts)))


@pytest.mark.parametrize("depth", [1, 2, 44, 45, 46, 99, 100])
def test_nested_nots_are_answered_correctly(mail, depth):
    for leaf in ("SEEN", "BODY pizza", "UID 2:3"):
        expected = LEAVES[leaf] if depth % 2 == 0 else EVERY_UID - LEAVES[leaf]
        assert store_search_uids(mail, nested_nots(depth, leaf)) == expected


@pytest.mark.parametrize("count", [1, 22, 23, 50, 100])
def test_chained_ors_are_answered_correctly(mail, count):
    for leaves in (["KEYWORD $None"], ["SEEN", "LARGER 1000"],
                   ["BODY pizza", "KEYWORD $None", "DELETED"]):
        program, expected = chained_ors(count, leaves)
        assert store_search_uids(mail, program) == expected, program[:80]


@pytest.mark.parametrize("depth", [10, 30, 60, 99, 100])
def test_alternating_not_and_or_trees_are_answered_correctly(mail, depth):
    for leaves in (["SEEN", "DELETED", "UID 2:3"], ["BODY pizza", "ANSWERED", "BCC eve"]):
        program, expected = alternating(depth, leaves)
        assert store_search_uids(mail, program) == expected, program[:80]


def test_random_deep_programs_are_answered_correctly(mail):
    import random

    rng = random.Random(3501)
    for _ in range(60):
        program, expected = random_program(rng, rng.choice([3, 8, 20, 60, 99]), [60])
        assert store_search_uids(mail, program) == expected, program


def test_deep_programs_are_answered_ok_through_the_server(server, mail):
    client = selected(server)
    assert search(client, nested_nots(100)) == "1"
    assert search(client, nested_nots(99)) == "2 3 4 5"
    program, _ = chained_ors(100, ["SEEN", "DELETED", "KEYWORD $None"])
    assert search(client, program) == "1 3"
    program, expected = alternating(100, ["SEEN", "DELETED", "UID 2:3"])
    assert search(client, program) == " ".join(str(uid) for uid in sorted(expected))
    assert search(client, "(" * 100 + "SEEN" + ")" * 100) == "1"


def test_a_program_nested_past_the_limit_gets_a_clear_bad(server, mail):
    client = selected(server)
    assert client.run(f"SEARCH {nested_nots(101)}")[1] == \
        "BAD Syntax error: search program too deeply nested"
    assert client.run("SEARCH " + "(" * 101 + "SEEN" + ")" * 101)[1] == \
        "BAD Syntax error: search program too deeply nested"
    assert search(client, "SEEN") == "1"


def test_not_not_and_or_chains_are_simplified_into_flat_sql(mail):
    assert store_search.simplify(key_of(nested_nots(100))) == key_of("SEEN")
    ors, _ = chained_ors(100, ["SEEN", "DELETED", "KEYWORD $None"])
    simplified = store_search.simplify(key_of(ors))
    assert isinstance(simplified, store_search.AnyKey) and len(simplified.keys) == 101
    inbox = Folder.objects.get(mailbox=mail, name="INBOX")
    for program in (nested_nots(99), ors, "(" * 100 + "SEEN" + ")" * 100):
        with CaptureQueriesContext(connection) as queries:
            store_search.search(inbox.pk, key_of(program), 5)
        [query] = queries.captured_queries
        assert query["sql"].replace('"', "").startswith("SELECT uid, modseq FROM")  # all in SQL
        assert query["sql"].count("((") < 3
