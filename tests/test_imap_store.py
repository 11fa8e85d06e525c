"""IMAP STORE, COPY, MOVE, EXPUNGE, UID EXPUNGE, CLOSE and UNSELECT."""

from __future__ import annotations

import pytest

from mailcore import directory
from mailcore.models import Folder, Message
from mailcore.store.delivery import deliver
from tests.imap_client import bulk_fill, imaplib_client, message, selected
from tests.mailboxes import inbox_folder as inbox
from tests.mailboxes import seen_by_an_earlier_session


@pytest.fixture
def mail(alice):
    for n in range(1, 5):
        deliver(message(n), "s@remote.test", [alice.pk])
    seen_by_an_earlier_session(alice)
    return alice



def test_store_adds_removes_and_replaces_flags(server, mail):
    client = selected(server)
    assert client.run("STORE 1 +FLAGS (\\Seen \\Flagged)") == (
        ["* 1 FETCH (FLAGS (\\Seen \\Flagged))"], "OK STORE completed")
    assert client.ok("STORE 1 -FLAGS \\Seen") == ["* 1 FETCH (FLAGS (\\Flagged))"]
    assert client.ok("STORE 1:2 FLAGS (\\Answered $Done)") == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Done)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Done \\*)] "
        "Flags permitted",
        "* 1 FETCH (FLAGS (\\Answered $Done))", "* 2 FETCH (FLAGS (\\Answered $Done))"]
    assert client.ok("STORE 2 +FLAGS.SILENT (\\Deleted)") == []
    row = Message.objects.get(uid=2)
    assert (row.answered, row.deleted, row.keywords) == (True, True, ["$Done"])


def test_uid_store_includes_the_uid_and_recent_cannot_be_set(server, mail):
    client = selected(server)
    assert client.run("UID STORE 3 +FLAGS (\\Recent \\Draft)") == (
        ["* 3 FETCH (UID 3 FLAGS (\\Draft))"], "OK UID STORE completed")
    assert client.run("UID STORE 9 +FLAGS (\\Draft)") == ([], "OK UID STORE completed")


def test_examine_is_read_only(server, mail):
    client = selected(server)
    untagged, done = client.run("EXAMINE INBOX")
    assert done == "OK [READ-ONLY] EXAMINE completed"
    assert "* OK [PERMANENTFLAGS ()] Read-only folder" in untagged
    for command in ("STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "MOVE 1 Trash", "UID EXPUNGE 1"):
        assert client.run(command)[1] == "NO [READ-ONLY] The folder is open read-only (EXAMINE)"
    assert client.run("COPY 1 Trash")[1].startswith("OK [COPYUID ")


def test_expunge_announces_each_removed_message(server, mail):
    client = selected(server)
    client.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert client.run("EXPUNGE") == (["* 3 EXPUNGE", "* 1 EXPUNGE"], "OK EXPUNGE completed")
    assert client.ok("FETCH 1:* (UID)") == ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 4)"]


def test_uid_expunge_removes_only_the_given_uids(server, mail):
    client = selected(server)
    client.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert client.run("UID EXPUNGE 2:3") == (["* 2 EXPUNGE"], "OK UID EXPUNGE completed")
    assert Message.objects.filter(folder=inbox(mail)).count() == 3


def test_close_expunges_silently_and_unselect_does_not(server, mail):
    client = selected(server)
    client.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert client.run("UNSELECT") == ([], "OK UNSELECT completed")
    assert Message.objects.filter(folder=inbox(mail)).count() == 4
    client.ok("SELECT INBOX")
    assert client.run("CLOSE") == ([], "OK CLOSE completed")
    assert Message.objects.filter(folder=inbox(mail)).count() == 3
    assert client.run("FETCH 1 FLAGS")[1] == "BAD FETCH not valid in this state"


def test_copy_answers_copyuid(server, mail):
    client = selected(server)
    trash = Folder.objects.get(mailbox=mail, name="Trash")
    assert client.run("COPY 2:3 Trash") == (
        [], f"OK [COPYUID {trash.uidvalidity} 2:3 1:2] COPY completed")
    assert client.run("UID COPY 1,4 Trash")[1] == (
        f"OK [COPYUID {trash.uidvalidity} 1,4 3:4] COPY completed")
    assert Message.objects.filter(folder=trash).count() == 4
    assert client.run("COPY 1 Nowhere")[1] == "NO [TRYCREATE] No such folder"


def test_copy_into_the_selected_folder_announces_exists(server, mail):
    client = selected(server)
    # The copy is new to every session: \\Recent in this one, the first told of it.
    assert client.run("COPY 1 INBOX")[0] == ["* 5 EXISTS", "* 1 RECENT"]


def test_copy_over_quota_is_refused_whole(server, mail):
    directory.set_quota(mail, Message.objects.get(uid=1).size * 5)
    client = selected(server)
    assert client.run("COPY 1:2 Archive")[1] == "NO [OVERQUOTA] Quota exceeded"
    assert not Message.objects.filter(folder__name="Archive").exists()


def test_move_sends_copyuid_then_expunges(server, mail):
    client = selected(server)
    archive = Folder.objects.get(mailbox=mail, name="Archive")
    assert client.run("MOVE 2:3 Archive") == ([
        f"* OK [COPYUID {archive.uidvalidity} 2:3 1:2] Moved", "* 3 EXPUNGE", "* 2 EXPUNGE"],
        "OK MOVE completed")
    assert client.run("UID MOVE 4 Archive") == ([
        f"* OK [COPYUID {archive.uidvalidity} 4 3] Moved", "* 2 EXPUNGE"],
        "OK UID MOVE completed")
    assert client.run("UID MOVE 99 Archive") == ([], "OK UID MOVE completed")


def test_move_with_qresync_sends_vanished(server, mail):
    client = selected(server, enable="QRESYNC")
    untagged = client.ok("MOVE 1:2 Trash")
    assert untagged[1:] == ["* VANISHED 1:2"]


def test_a_big_store_and_expunge_work_on_thousands_of_messages(server, alice):
    bulk_fill(inbox(alice), 3000)
    client = selected(server)
    assert client.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)") == []
    untagged, done = client.run("EXPUNGE")
    assert done == "OK EXPUNGE completed" and len(untagged) == 3000
    assert untagged[0] == "* 3000 EXPUNGE"


def test_imaplib_store_copy_expunge(server, mail):
    client = imaplib_client(server)
    client.select("INBOX")
    assert client.store("1", "+FLAGS", "(\\Deleted)") == ("OK", [b"1 (FLAGS (\\Deleted))"])
    assert client.copy("2", "Trash")[0] == "OK"
    assert client.expunge() == ("OK", [b"1"])
    assert client.search(None, "ALL") == ("OK", [b"1 2 3"])
    client.close()
    client.logout()
