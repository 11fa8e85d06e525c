"""Scripted sessions for the points where a conformance suite found us off the RFCs.

Each test is one deviation of issue 13, replayed over a socket with the exact replies
the RFC (and Dovecot, which passes the suite) gives.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailcore.message.transfer import decode_quoted_printable, encode_binary_parts
from mailcore.models import Blob, Expunged, Message
from mailcore.store import blobs, messages
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from tests.imap_client import connect, message, selected
from tests.mailboxes import inbox_folder, seen_by_an_earlier_session


def fetch(client, command: str) -> str:
    untagged, done = client.run(command)
    assert done.startswith("OK"), done
    assert len(untagged) == 1, untagged
    return untagged[0]


# BINARY: quoted-printable as RFC 2045 section 6.7 decodes it ------------------------------

QP_MESSAGE = (
    b"From: a@remote.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"padded line   \t\r\n"
    b"soft break= \t\r\n"
    b"joined =3D done\r\n"
)
QP_DECODED = b"padded line\r\nsoft breakjoined = done\r\n"


@pytest.mark.parametrize("encoded,decoded", [
    (b"a  \r\nb", b"a\r\nb"),  # trailing whitespace is transport padding (rule 3)
    (b"a= \r\nb", b"ab"),  # "=" then whitespace is still a soft line break (rule 5)
    (b"a=\r\nb=41", b"abA"),
    (b"x=zz=4", b"x=zz=4"),  # not an escape: kept as written, as readers do
])
def test_quoted_printable_decoding(encoded, decoded):
    assert decode_quoted_printable(encoded) == decoded


def test_binary_decodes_quoted_printable_per_rfc_2045(server, alice):
    deliver(QP_MESSAGE, "s@remote.test", [alice.pk])
    client = selected(server)
    assert fetch(client, "FETCH 1 BINARY.SIZE[1]") == (
        f"* 1 FETCH (BINARY.SIZE[1] {len(QP_DECODED)})")
    assert fetch(client, "FETCH 1 BINARY.PEEK[1]") == (
        f"* 1 FETCH (BINARY[1] {{{len(QP_DECODED)}}}\r\n{QP_DECODED.decode()})")
    assert fetch(client, "FETCH 1 BINARY.PEEK[1]<9.14>") == (
        "* 1 FETCH (BINARY[1]<9> {14}\r\nne\r\nsoft break)")


# CONDSTORE (RFC 7162) ---------------------------------------------------------------------

@pytest.fixture
def five(alice):
    for n in range(1, 6):
        deliver(message(n), "s@remote.test", [alice.pk])
    return alice


def test_first_condstore_command_after_select_reports_highestmodseq(server, five):
    client = selected(server)
    assert client.ok("FETCH 1 (MODSEQ)") == [
        "* OK [HIGHESTMODSEQ 6] Highest mod-sequence", "* 1 FETCH (MODSEQ (2))"]
    assert client.ok("FETCH 1 (MODSEQ)") == ["* 1 FETCH (MODSEQ (2))"]  # only the first


def test_condstore_enabled_before_select_gets_no_extra_highestmodseq(server, five):
    client = selected(server, enable="CONDSTORE")
    assert client.ok("FETCH 1 (MODSEQ)") == ["* 1 FETCH (MODSEQ (2))"]


def test_search_return_min_max_reports_the_modseq_of_that_message(server, five):
    client = selected(server)
    client.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")  # modseq 7
    client.ok("STORE 4 +FLAGS.SILENT (\\Flagged)")  # modseq 8
    assert client.ok("SEARCH RETURN (MIN) MODSEQ 2") == [
        '* OK [HIGHESTMODSEQ 8] Highest mod-sequence',
        '* ESEARCH (TAG "t5") MIN 1 MODSEQ 2']
    assert client.ok("SEARCH RETURN (MAX) MODSEQ 2") == ['* ESEARCH (TAG "t6") MAX 5 MODSEQ 6']
    assert client.ok("SEARCH RETURN (MIN MAX) MODSEQ 2") == [
        '* ESEARCH (TAG "t7") MIN 1 MAX 5 MODSEQ 6']
    assert client.ok("SEARCH RETURN (MAX) FLAGGED MODSEQ 2") == [
        '* ESEARCH (TAG "t8") MAX 4 MODSEQ 8']
    assert client.ok("SEARCH RETURN (COUNT) MODSEQ 2") == [
        '* ESEARCH (TAG "t9") COUNT 5 MODSEQ 8']


# Keywords are announced in FLAGS before a response uses them ------------------------------

def test_fetch_announces_a_keyword_set_elsewhere_before_using_it(server, five):
    seen_by_an_earlier_session(five)
    reader = selected(server)
    writer = selected(server)
    writer.ok("STORE 1 +FLAGS.SILENT ($Label1)")
    untagged = reader.ok("FETCH 1 (FLAGS)")
    assert untagged[:3] == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] "
        "Flags permitted",
        "* 1 FETCH (FLAGS ($Label1))"]
    assert not any(line.startswith("* FLAGS") for line in reader.ok("FETCH 1 (FLAGS)"))


# Mailbox names: a valid astring is never BAD (RFC 3501 section 5.1.3) ---------------------

ODD_NAME = "!#$&'+,-.0123456789:;<=>?@^_`|[}"


def test_a_name_that_is_not_modified_utf7_is_no_such_mailbox(server, alice):
    client = connect(server, login=True)
    assert client.run(f"SELECT {ODD_NAME}") == ([], "NO [NONEXISTENT] No such folder")
    assert client.run(f"EXAMINE {ODD_NAME}")[1] == "NO [NONEXISTENT] No such folder"
    assert client.run(f"STATUS {ODD_NAME} (MESSAGES)")[1].startswith("NO [NONEXISTENT]")
    assert client.run(f'LIST "" {ODD_NAME}') == ([], "OK LIST completed")
    assert client.run(f'LIST "" "{ODD_NAME}*"') == ([], "OK LIST completed")
    assert client.run(f"DELETE {ODD_NAME}")[1].startswith("NO [NONEXISTENT]")
    assert client.run("SELECT {3+}\r\na\x01b")[1] == "NO [NONEXISTENT] No such folder"
    assert client.run(b"STATUS {3+}\r\na\x00b (MESSAGES)")[1].startswith(("NO", "BAD"))


def test_create_of_a_name_that_is_not_modified_utf7_is_refused_as_cannot(server, alice):
    client = connect(server, login=True)
    assert client.run(f"CREATE {ODD_NAME}") == (
        [], "NO [CANNOT] Mailbox name is not valid modified UTF-7")
    assert client.run(f"RENAME Junk {ODD_NAME}")[1] == (
        "NO [CANNOT] Mailbox name is not valid modified UTF-7")
    assert client.run("CREATE a&-b")[1] == "OK CREATE completed"  # "&-" is "&"
    assert client.ok('LIST "" a*') == ['* LIST (\\HasNoChildren) "/" a&-b']


# Sent dates: the header's own calendar date (RFC 3501 section 6.4.4) ----------------------

def dated(n: int, date: str) -> bytes:
    return (f"From: a@remote.test\r\nSubject: {n}\r\nDate: {date}\r\n\r\nbody\r\n").encode()


def test_sent_date_searches_use_the_date_as_written(server, alice):
    deliver(dated(1, "Sun, 25 Mar 2007 00:00 +0200"), "s@remote.test", [alice.pk])
    deliver(dated(2, "Sat, 24 Mar 2007 23:30 -0500"), "s@remote.test", [alice.pk])
    deliver(b"From: a@remote.test\r\nSubject: undated\r\n\r\nx\r\n", "s@remote.test", [alice.pk])
    client = selected(server)
    assert client.ok("SEARCH SENTON 25-Mar-2007") == ["* SEARCH 1"]
    assert client.ok("SEARCH SENTON 24-Mar-2007") == ["* SEARCH 2"]
    assert client.ok("SEARCH SENTBEFORE 25-Mar-2007") == ["* SEARCH 2"]
    assert client.ok("SEARCH SENTSINCE 25-Mar-2007") == ["* SEARCH 1 3"]  # 3: arrival date
    assert client.ok("SEARCH NOT SENTBEFORE 25-Mar-2007") == ["* SEARCH 1 3"]
    assert client.ok("SEARCH OR SENTON 24-Mar-2007 BODY nothing") == ["* SEARCH 2"]


# Addresses with comments (RFC 5322 section 3.4.1: CFWS around the parts) ------------------

def test_search_matches_addresses_split_by_comments(server, alice):
    deliver(b"From: <user-from (comment)@ (comment) domain.org>\r\n"
            b"To: Some One <to@remote.test> (work)\r\n"
            b"Cc: cc (c) @ remote.test\r\nBcc: bcc@(c)remote.test\r\nSubject: c\r\n\r\nx\r\n",
            "s@remote.test", [alice.pk])
    deliver(b"From: other@domain.org\r\nTo: to@remote.test\r\nSubject: plain\r\n\r\nx\r\n",
            "s@remote.test", [alice.pk])
    client = selected(server)
    assert client.ok("SEARCH FROM user-from@domain.org") == ["* SEARCH 1"]
    assert client.ok("SEARCH FROM domain.org") == ["* SEARCH 1 2"]
    assert client.ok("SEARCH CC cc@remote.test") == ["* SEARCH 1"]
    assert client.ok("SEARCH BCC bcc@remote.test") == ["* SEARCH 1"]
    assert client.ok('SEARCH TO "Some One <to@remote.test>"') == ["* SEARCH 1"]
    assert client.ok("SEARCH OR FROM user-from@domain.org SUBJECT plain") == ["* SEARCH 1 2"]
    assert client.ok("SEARCH NOT FROM user-from@domain.org") == ["* SEARCH 2"]
    assert client.ok("SEARCH FROM comment") == ["* SEARCH 1"]  # as written, too


# \Recent (RFC 3501 section 2.3.2) ---------------------------------------------------------

def test_recent_belongs_to_the_first_session_that_selects(server, five):
    watcher = connect(server, login=True)
    untagged = watcher.ok("EXAMINE INBOX")  # EXAMINE shows \Recent but leaves it
    assert "* 5 RECENT" in untagged
    assert watcher.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))"]
    assert watcher.ok("STATUS INBOX (RECENT)") == ["* STATUS INBOX (RECENT 5)"]
    first = connect(server, login=True)
    assert "* 5 RECENT" in first.ok("SELECT INBOX")
    assert first.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))"]
    assert first.ok("SEARCH RECENT") == ["* SEARCH 1 2 3 4 5"]
    first.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert first.ok("SEARCH NEW") == ["* SEARCH 1 3 4 5"]
    assert first.ok("SEARCH OLD") == ["* SEARCH"]
    assert first.ok("STATUS INBOX (RECENT)") == ["* STATUS INBOX (RECENT 0)"]
    second = connect(server, login=True)
    assert "* 0 RECENT" in second.ok("SELECT INBOX")
    assert second.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS ())"]
    assert second.ok("SEARCH RECENT") == ["* SEARCH"]
    assert second.ok("SEARCH OLD") == ["* SEARCH 1 2 3 4 5"]
    # A message arriving now is \Recent in the one session that hears of it first.
    deliver(message(6), "s@remote.test", [five.pk])
    assert second.ok("NOOP") == ["* 6 EXISTS", "* 1 RECENT"]
    assert second.ok("FETCH 6 FLAGS") == ["* 6 FETCH (FLAGS (\\Recent))"]
    assert first.ok("NOOP") == ["* 6 EXISTS", "* 5 RECENT"]
    assert first.ok("FETCH 6 FLAGS") == ["* 6 FETCH (FLAGS ())"]
    # The \Recent of a session ends with it: a later SELECT has nothing recent.
    assert "* 0 RECENT" in connect(server, login=True).ok("SELECT INBOX")


def test_imap4rev2_sessions_neither_see_nor_take_recent(server, five):
    client = connect(server, login=True)
    client.ok("ENABLE IMAP4rev2")
    untagged = client.ok("SELECT INBOX")
    assert not any("RECENT" in line for line in untagged)
    assert client.ok("FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS ())"]
    assert "* 5 RECENT" in connect(server, login=True).ok("SELECT INBOX")  # still there


# Subscriptions: a list of names apart from the folders (RFC 3501 6.3.6, RFC 5258) ---------

def test_subscriptions_are_names_kept_apart_from_folders(server, alice):
    client = connect(server, login=True)
    client.ok("CREATE a/b")
    assert client.ok('LSUB "" a*') == []  # CREATE subscribes nothing
    assert client.run("SUBSCRIBE nothing/here")[1] == "OK SUBSCRIBE completed"
    client.ok("SUBSCRIBE a/b")
    assert client.ok('LSUB "" a/%') == ['* LSUB () "/" a/b']
    assert client.ok('LSUB "" %') == [  # the standard folders come subscribed
        '* LSUB () "/" Archive', '* LSUB () "/" Drafts', '* LSUB () "/" INBOX',
        '* LSUB () "/" Junk', '* LSUB () "/" Sent', '* LSUB () "/" Trash',
        '* LSUB (\\Noselect) "/" a', '* LSUB (\\Noselect) "/" nothing']
    client.ok("DELETE a/b")  # the subscription stays
    assert client.ok('LSUB "" a/%') == ['* LSUB () "/" a/b']
    assert client.ok('LIST (SUBSCRIBED) "" a*') == [
        '* LIST (\\NonExistent \\Subscribed) "/" a/b']
    assert client.ok('LIST "" a*') == ['* LIST (\\HasNoChildren) "/" a']
    client.ok("UNSUBSCRIBE a/b")
    assert client.ok('LSUB "" a*') == []
    assert client.ok('LIST (SUBSCRIBED) "" a*') == []


def test_list_return_subscribed_marks_only_subscribed_names(server, alice):
    client = connect(server, login=True)
    client.ok("CREATE Never")
    client.ok("CREATE Once")
    client.ok("SUBSCRIBE Once")
    assert client.ok('LIST "" (Never Once) RETURN (SUBSCRIBED)') == [
        '* LIST (\\HasNoChildren) "/" Never', '* LIST (\\HasNoChildren \\Subscribed) "/" Once']


def test_recursivematch_shows_parents_of_subscribed_names_the_pattern_leaves_out(server, alice):
    # RFC 5258 section 3.5: a parent is listed, with CHILDINFO, for a subscribed name
    # below it that the pattern leaves out (as Dovecot does). Qux2 does not exist.
    client = connect(server, login=True)
    for name in ("Foo2/Bar1", "Foo2/Bar2", "Baz2/Bar2", "Baz2/Bar22", "Eps2/Mailbox1"):
        client.ok(f"CREATE {name}")
    for name in ("Foo2/Bar2", "Baz2/Bar2", "Baz2/Bar22", "Eps2", "Eps2/Mailbox1",
                 "Qux2/Bar2"):
        client.ok(f"SUBSCRIBE {name}")
    assert client.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "*2"') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" Baz2/Bar2',
        '* LIST (\\HasNoChildren \\Subscribed) "/" Baz2/Bar22',
        '* LIST (\\HasChildren \\Subscribed) "/" Eps2 ("CHILDINFO" ("SUBSCRIBED"))',
        '* LIST (\\HasNoChildren \\Subscribed) "/" Foo2/Bar2',
        '* LIST (\\NonExistent \\Subscribed) "/" Qux2/Bar2']
    listed = client.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert [line for line in listed if "2" in line] == [
        '* LIST (\\HasChildren) "/" Baz2 ("CHILDINFO" ("SUBSCRIBED"))',
        '* LIST (\\HasChildren \\Subscribed) "/" Eps2 ("CHILDINFO" ("SUBSCRIBED"))',
        '* LIST (\\HasChildren) "/" Foo2 ("CHILDINFO" ("SUBSCRIBED"))',
        '* LIST (\\NonExistent) "/" Qux2 ("CHILDINFO" ("SUBSCRIBED"))']


# FETCH after another session's EXPUNGE (RFC 2180 section 4.1.1) --------------------------

def test_a_session_reads_messages_expunged_elsewhere_until_told(server, five, settings):
    reader, other = selected(server), selected(server)
    other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")
    untagged, done = reader.run("FETCH 2 (UID RFC822.SIZE BODY.PEEK[TEXT] ENVELOPE)")
    assert done == "OK FETCH completed"
    assert untagged[0].startswith("* 2 FETCH (UID 2 RFC822.SIZE ")
    assert "BODY[TEXT] {8}\r\nBody 2\r\n ENVELOPE (" in untagged[0]
    assert reader.ok("FETCH 1:3 (UID)") == [
        "* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]
    assert reader.ok("NOOP") == ["* 2 EXPUNGE"]  # told now: from here on it is gone
    assert reader.ok("FETCH 2 (UID)") == ["* 2 FETCH (UID 3)"]


def test_what_is_no_longer_kept_is_expunge_issued(server, five, settings):
    settings.IMAP_EXPUNGED_KEEP = 0
    reader, other = selected(server), selected(server)
    other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")
    assert blobs.release_expunged() == 1
    untagged, done = reader.run("FETCH 1:3 (UID)")
    assert untagged == ["* 1 FETCH (UID 1)", "* 3 FETCH (UID 3)"]
    assert done == "NO [EXPUNGEISSUED] Some of the requested messages no longer exist"


def test_a_kept_expunged_message_keeps_its_blob_until_released(five, settings):
    folder = inbox_folder(five)
    key = Message.objects.get(folder=folder, uid=2).blob_id
    Message.objects.filter(folder=folder, uid=2).update(deleted=True)
    messages.expunge_deleted(folder.pk)
    Blob.objects.filter(pk=key).update(created_at=timezone.now() - timedelta(days=2))
    assert blobs.collect_orphans(grace_seconds=0) == 0  # still kept: nothing lost
    assert blob_store().get(key).startswith(b"From: ")
    Expunged.objects.update(kept_until=timezone.now() - timedelta(seconds=1))
    assert blobs.collect_orphans(grace_seconds=0) == 1  # released: nothing leaked
    assert not Blob.objects.filter(pk=key).exists()
    assert list(Expunged.objects.values_list("uid", "blob_id")) == [(2, None)]  # tombstone


# Binary APPEND: a part with NUL is never sent raw in an ordinary literal (RFC 3516) --------

BINARY_MESSAGE = (
    b"From: a@remote.test\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
    b"--x\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\nab\x00cd\r\n"
    b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n")


def test_a_binary_append_is_served_base64_in_body_and_raw_in_binary(server, alice):
    client = selected(server)
    untagged, done = client.run(b"APPEND INBOX ~{%d+}\r\n" % len(BINARY_MESSAGE) + BINARY_MESSAGE)
    assert done.startswith("OK [APPENDUID ")
    assert fetch(client, "FETCH 1 BODY.PEEK[1]") == "* 1 FETCH (BODY[1] {8}\r\nYWIAY2Q=)"
    assert fetch(client, "FETCH 1 BODY.PEEK[1.MIME]") == (
        "* 1 FETCH (BODY[1.MIME] {77}\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n)")
    assert fetch(client, "FETCH 1 BINARY.PEEK[1]") == "* 1 FETCH (BINARY[1] ~{5}\r\nab\x00cd)"
    assert fetch(client, "FETCH 1 BINARY.SIZE[1]") == "* 1 FETCH (BINARY.SIZE[1] 5)"
    assert fetch(client, "FETCH 1 BODY.PEEK[2]") == "* 1 FETCH (BODY[2] {2}\r\nhi)"
    body = fetch(client, "FETCH 1 BODY.PEEK[]")
    assert "\x00" not in body and "YWIAY2Q=" in body
    assert '"base64" 8' in fetch(client, "FETCH 1 BODYSTRUCTURE")


def test_binary_parts_are_reencoded_whatever_their_header_said():
    folded = b"From: a\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\na\x00"
    assert encode_binary_parts(folded) == (
        b"From: a\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nYQA=")
    assert encode_binary_parts(BINARY_MESSAGE.replace(b"\x00", b"-")) == (
        BINARY_MESSAGE.replace(b"\x00", b"-"))  # nothing binary: kept as it came
