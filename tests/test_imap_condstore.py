"""CONDSTORE and QRESYNC (RFC 7162): MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE, VANISHED."""

from __future__ import annotations

import pytest

from mailcore.models import Message
from mailcore.store import messages
from mailcore.store.delivery import deliver
from tests.imap_client import connect, message, selected
from tests.mailboxes import inbox_folder as inbox
from tests.mailboxes import seen_by_an_earlier_session


@pytest.fixture
def mail(alice):
    for n in range(1, 6):
        deliver(message(n), "s@remote.test", [alice.pk])
    seen_by_an_earlier_session(alice)
    return alice



def test_select_reports_highestmodseq_and_condstore_enables(server, mail):
    client = connect(server, login=True)
    untagged = client.ok("SELECT INBOX (CONDSTORE)")
    assert "* OK [HIGHESTMODSEQ 6] Highest mod-sequence" in untagged
    assert client.ok("FETCH 1 (FLAGS)") == ["* 1 FETCH (FLAGS () MODSEQ (2))"]


def test_enable_condstore_and_modseq_items(server, mail):
    client = connect(server, login=True)
    assert client.ok("ENABLE CONDSTORE") == ["* ENABLED CONDSTORE"]
    assert client.ok("ENABLE CONDSTORE") == ["* ENABLED"]
    client.ok("SELECT INBOX")
    assert client.ok("FETCH 2 (MODSEQ)") == ["* 2 FETCH (MODSEQ (3))"]
    assert client.ok("STORE 2 +FLAGS (\\Seen)") == ["* 2 FETCH (FLAGS (\\Seen) MODSEQ (7))"]
    assert client.run("STATUS INBOX (HIGHESTMODSEQ)")[0] == [
        "* STATUS INBOX (HIGHESTMODSEQ 7)"]


def test_fetch_changedsince(server, mail):
    client = selected(server)
    client.ok("STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    assert client.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE 6)") == [
        "* OK [HIGHESTMODSEQ 7] Highest mod-sequence",  # the first CONDSTORE command
        "* 2 FETCH (FLAGS (\\Flagged) MODSEQ (7))", "* 4 FETCH (FLAGS (\\Flagged) MODSEQ (7))"]
    assert client.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7)") == []


def test_store_unchangedsince_refuses_changed_messages(server, mail):
    client = selected(server)
    client.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")  # message 2 now at modseq 7
    untagged, done = client.run("STORE 1:3 (UNCHANGEDSINCE 6) +FLAGS (\\Seen)")
    assert done == "OK [MODIFIED 2] Conditional STORE failed"
    assert untagged == ["* OK [HIGHESTMODSEQ 7] Highest mod-sequence",
                        "* 1 FETCH (FLAGS (\\Seen) MODSEQ (8))",
                        "* 3 FETCH (FLAGS (\\Seen) MODSEQ (8))"]
    assert not Message.objects.get(uid=2).seen
    assert client.run("UID STORE 2 (UNCHANGEDSINCE 1) +FLAGS.SILENT (\\Seen)")[1] == (
        "OK [MODIFIED 2] Conditional STORE failed")
    # .SILENT still reports the new mod-sequence under CONDSTORE.
    assert client.ok("UID STORE 5 (UNCHANGEDSINCE 100) +FLAGS.SILENT (\\Seen)") == [
        "* 5 FETCH (UID 5 MODSEQ (9))"]


def test_search_modseq(server, mail):
    client = selected(server)
    client.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
    assert client.ok("SEARCH MODSEQ 7") == ["* OK [HIGHESTMODSEQ 7] Highest mod-sequence",
                                            "* SEARCH 3 (MODSEQ 7)"]
    assert client.ok('SEARCH MODSEQ "/flags/\\\\seen" all 7') == ["* SEARCH 3 (MODSEQ 7)"]
    assert client.ok("SEARCH MODSEQ 8") == ["* SEARCH"]


def test_select_qresync_needs_enable(server, mail):
    client = connect(server, login=True)
    assert client.run("SELECT INBOX (QRESYNC (1 1))")[1] == (
        "BAD Enable QRESYNC first (RFC 7162 section 3.2.3)")


def test_select_qresync_reports_vanished_and_changed(server, mail):
    folder = inbox(mail)
    messages.store_flags(folder.pk, [2], "add", ["\\Seen"])  # modseq 7
    Message.objects.filter(uid=4).update(deleted=True)
    messages.expunge_deleted(folder.pk)  # modseq 8
    client = connect(server, login=True)
    client.ok("ENABLE QRESYNC")
    untagged = client.ok(f"SELECT INBOX (QRESYNC ({folder.uidvalidity} 6))")
    assert untagged[-2:] == ["* VANISHED (EARLIER) 4",
                             "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (7))"]
    assert "* OK [HIGHESTMODSEQ 8] Highest mod-sequence" in untagged
    # Known UIDs narrow VANISHED down; another UIDVALIDITY means a full resync.
    untagged = client.ok(f"SELECT INBOX (QRESYNC ({folder.uidvalidity} 6 1:3))")
    assert untagged[0] == "* OK [CLOSED] Previous folder closed"
    assert not any(line.startswith("* VANISHED") for line in untagged)
    untagged = client.ok("SELECT INBOX (QRESYNC (1 6))")
    assert not any("VANISHED" in line or "FETCH" in line for line in untagged)


def test_expunges_are_vanished_under_qresync(server, mail):
    client = selected(server, enable="QRESYNC")
    client.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert client.run("EXPUNGE") == (["* VANISHED 1:2"],
                                     "OK [HIGHESTMODSEQ 8] EXPUNGE completed")


def test_uid_fetch_vanished(server, mail):
    client = selected(server, enable="QRESYNC")
    client.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    client.ok("EXPUNGE")
    client.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")  # UID 2, modseq 9
    assert client.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)") == [
        "* VANISHED (EARLIER) 1,3", "* 1 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (9))"]
    client.ok("UID SEARCH RETURN (SAVE) ALL")
    assert client.ok("UID FETCH $ (FLAGS) (CHANGEDSINCE 8 VANISHED)") == [
        "* 1 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (9))"]
    assert client.run("FETCH 1:* (FLAGS) (CHANGEDSINCE 6 VANISHED)")[1] == (
        "BAD VANISHED needs UID FETCH with CHANGEDSINCE and QRESYNC enabled")


def test_another_sessions_flag_change_carries_modseq(server, mail):
    watcher = selected(server, enable="CONDSTORE")
    actor = selected(server)
    actor.ok("STORE 1 +FLAGS.SILENT (\\Answered)")
    assert watcher.ok("NOOP") == ["* 1 FETCH (UID 1 FLAGS (\\Answered) MODSEQ (7))"]
