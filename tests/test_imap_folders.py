"""IMAP folder commands: CREATE, DELETE, RENAME, LIST/LSUB, SUBSCRIBE, STATUS, APPEND, QUOTA."""

from __future__ import annotations

import imapclient
import pytest

from mailcore import directory
from mailcore.models import Folder, Message
from mailcore.store.delivery import deliver
from tests.conftest import PASSWORD
from tests.imap_client import ALICE, connect, imaplib_client, message

DEFAULT_LIST = [
    '* LIST (\\HasNoChildren \\Archive) "/" Archive',
    '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
    '* LIST (\\HasNoChildren) "/" INBOX',
    '* LIST (\\HasNoChildren \\Junk) "/" Junk',
    '* LIST (\\HasNoChildren \\Sent) "/" Sent',
    '* LIST (\\HasNoChildren \\Trash) "/" Trash',
]


@pytest.fixture
def client(server, alice):
    return connect(server, login=True)


def test_list_shows_every_folder_with_special_use_and_children(client):
    assert client.run('LIST "" *') == (DEFAULT_LIST, "OK LIST completed")


def test_list_with_an_empty_pattern_gives_the_delimiter(client):
    assert client.ok('LIST "" ""') == ['* LIST (\\Noselect) "/" ""']


def test_percent_stops_at_the_hierarchy_delimiter_and_star_does_not(client):
    client.ok("CREATE Projects/2024/Q1")
    assert client.ok('LIST "" Projects/%') == [
        '* LIST (\\HasChildren) "/" Projects/2024']
    assert client.ok('LIST "" Projects/*') == [
        '* LIST (\\HasChildren) "/" Projects/2024',
        '* LIST (\\HasNoChildren) "/" Projects/2024/Q1']
    assert client.ok('LIST Projects/ %') == ['* LIST (\\HasChildren) "/" Projects/2024']
    assert client.ok('LIST "" %') == [*DEFAULT_LIST[:4], '* LIST (\\HasChildren) "/" Projects',
                                      *DEFAULT_LIST[4:]]


def test_inbox_matches_in_any_case(client):
    assert client.ok('LIST "" inbox') == ['* LIST (\\HasNoChildren) "/" INBOX']
    assert client.ok('LIST "" InBoX') == ['* LIST (\\HasNoChildren) "/" INBOX']


def test_create_delete_and_list(client):
    assert client.run("CREATE Work") == ([], "OK CREATE completed")
    assert client.run("CREATE Work")[1] == "NO [ALREADYEXISTS] Folder already exists"
    assert client.run("CREATE INBOX")[1] == "NO [ALREADYEXISTS] Folder already exists"
    assert client.ok('LIST "" Work') == ['* LIST (\\HasNoChildren) "/" Work']
    assert client.run("DELETE Work") == ([], "OK DELETE completed")
    assert client.ok('LIST "" Work') == []
    assert client.run("DELETE Work")[1] == "NO [NONEXISTENT] No such folder"
    assert client.run("DELETE INBOX")[1] == "NO [CANNOT] INBOX cannot be deleted"


def test_a_trailing_delimiter_is_dropped_and_parents_are_created(client):
    client.ok("CREATE a/b/")
    assert client.ok('LIST "" a*') == ['* LIST (\\HasChildren) "/" a',
                                       '* LIST (\\HasNoChildren) "/" a/b']
    assert client.run("DELETE a")[1] == "NO [HASCHILDREN] Folder has subfolders; delete them first"


def test_create_special_use(client, alice):
    client.ok("DELETE Archive")
    assert client.run("CREATE Old (USE (\\Archive))") == ([], "OK CREATE completed")
    assert client.ok('LIST "" Old') == ['* LIST (\\HasNoChildren \\Archive) "/" Old']
    assert client.run("CREATE Both (USE (\\Sent \\Trash))")[1] == (
        "NO [USEATTR] A folder can have one special use")
    assert client.run("CREATE Important (USE (\\Important))")[1] == (
        "NO [USEATTR] Unsupported special-use attribute")


def test_names_travel_in_modified_utf7(client, alice):
    assert client.run('CREATE "Entw&APw-rfe"')[1] == "OK CREATE completed"
    assert Folder.objects.filter(mailbox=alice, name="Entwürfe").exists()
    assert client.ok('LIST "" Entw*') == ['* LIST (\\HasNoChildren) "/" Entw&APw-rfe']
    assert client.run('CREATE "Bad&Name"')[1] == (
        "NO [CANNOT] Mailbox name is not valid modified UTF-7")


def test_with_imap4rev2_enabled_names_are_utf8(client, alice):
    client.ok("ENABLE IMAP4rev2")
    client.ok('CREATE "Entwürfe"')
    assert client.ok('LIST "" Entw*') == ['* LIST (\\HasNoChildren) "/" "Entwürfe"']


def test_imap4rev2_select_lists_the_folder_and_drops_recent(client, alice):
    deliver(message(1), "s@remote.test", [alice.pk])
    assert client.ok("ENABLE IMAP4rev2") == ["* ENABLED IMAP4rev2"]
    untagged = client.ok("SELECT Sent")
    assert '* LIST (\\Sent) "/" Sent' in untagged
    assert not any("RECENT" in line or "UNSEEN" in line for line in untagged)
    untagged = client.ok("SELECT INBOX")
    assert untagged[:3] == ["* OK [CLOSED] Previous folder closed",
                            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
                            "* 1 EXISTS"]


def test_a_renamed_selected_folder_can_still_be_deleted_by_its_new_name(client):
    client.ok("CREATE Work")
    client.ok("SELECT Work")
    client.ok("RENAME Work Job")
    assert client.run("DELETE Job") == (["* OK [CLOSED] Previous folder closed"],
                                        "OK DELETE completed")
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_rename_moves_subfolders_along(client):
    client.ok("CREATE Work/Reports")
    assert client.run("RENAME Work Job") == ([], "OK RENAME completed")
    assert client.ok('LIST "" Job*') == ['* LIST (\\HasChildren) "/" Job',
                                         '* LIST (\\HasNoChildren) "/" Job/Reports']
    assert client.run("RENAME Nope Other")[1] == "NO [NONEXISTENT] No such folder"
    assert client.run("RENAME Job Sent")[1] == "NO [ALREADYEXISTS] Target folder already exists"


def test_renaming_inbox_moves_its_messages_and_leaves_it_empty(client, alice):
    deliver(message(1), "s@remote.test", [alice.pk])
    client.ok("RENAME INBOX Old-Inbox")
    assert client.ok("STATUS INBOX (MESSAGES)") == ["* STATUS INBOX (MESSAGES 0)"]
    assert client.ok("STATUS Old-Inbox (MESSAGES)") == ["* STATUS Old-Inbox (MESSAGES 1)"]


def test_subscriptions_and_lsub(client):
    client.ok("CREATE Lists/python")
    assert client.ok('LSUB "" Lists*') == []  # CREATE does not subscribe
    client.ok("SUBSCRIBE Lists/python")
    assert client.ok('LSUB "" Lists*') == ['* LSUB () "/" Lists/python']
    # RFC 3501 section 6.3.9: "%" shows the unsubscribed parent as \Noselect.
    assert client.ok('LSUB "" L%') == ['* LSUB (\\Noselect) "/" Lists']
    client.ok("UNSUBSCRIBE Lists/python")
    assert client.ok('LSUB "" Lists*') == []
    assert client.run("SUBSCRIBE Nowhere")[1] == "OK SUBSCRIBE completed"


def test_list_extended_subscribed_and_recursivematch(client):
    client.ok("CREATE Lists/python")
    client.ok("SUBSCRIBE Lists/python")
    assert client.ok('LIST (SUBSCRIBED) "" "Lists*"') == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" Lists/python']
    assert client.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')[3:5] == [
        '* LIST (\\HasNoChildren \\Junk \\Subscribed) "/" Junk',
        '* LIST (\\HasChildren) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))',
    ]
    assert client.ok('LIST "" (Sent Lists) RETURN (SUBSCRIBED CHILDREN)') == [
        '* LIST (\\HasChildren) "/" Lists',
        '* LIST (\\HasNoChildren \\Sent \\Subscribed) "/" Sent']


def test_list_special_use_selection(client):
    client.ok("CREATE Plain")
    names = [line.rsplit(" ", 1)[1] for line in client.ok('LIST (SPECIAL-USE) "" *')]
    assert names == ["Archive", "Drafts", "Junk", "Sent", "Trash"]


def test_list_status_returns_status_after_each_folder(client, alice):
    deliver(message(1), "s@remote.test", [alice.pk])
    assert client.ok('LIST "" INBOX RETURN (STATUS (MESSAGES UNSEEN))') == [
        '* LIST (\\HasNoChildren) "/" INBOX', "* STATUS INBOX (MESSAGES 1 UNSEEN 1)"]


def test_status_items(client, alice):
    deliver(message(1), "s@remote.test", [alice.pk])
    deliver(message(2), "s@remote.test", [alice.pk])
    Message.objects.filter(uid=1).update(seen=True, deleted=True)
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    size = len(message(1)) + len(message(2))
    assert client.run("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE "
                      "HIGHESTMODSEQ APPENDLIMIT)") == ([
        f"* STATUS INBOX (MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY {inbox.uidvalidity} "
        f"UNSEEN 1 DELETED 1 SIZE {size} HIGHESTMODSEQ 3 APPENDLIMIT 52428800)"],
        "OK STATUS completed")
    assert client.run("STATUS Nope (MESSAGES)")[1] == "NO [NONEXISTENT] No such folder"
    assert client.run("STATUS INBOX (BOGUS)")[1].startswith("BAD Syntax error")


def test_append_with_flags_and_date_answers_appenduid(client, alice):
    raw = message(1)
    client.send(f'a1 APPEND Drafts (\\Draft \\Seen $Work) "05-Jan-2024 10:00:00 +0100" '
                f"{{{len(raw)}}}".encode() + b"\r\n")
    assert client.raw_line() == b"+ Ready for literal data\r\n"
    client.send(raw + b"\r\n")
    drafts = Folder.objects.get(mailbox=alice, name="Drafts")
    assert client.response() == f"a1 OK [APPENDUID {drafts.uidvalidity} 1] APPEND completed"
    stored = Message.objects.get(folder=drafts)
    assert (stored.draft, stored.seen, stored.keywords) == (True, True, ["$Work"])
    assert stored.internal_date.isoformat() == "2024-01-05T09:00:00+00:00"
    assert stored.envelope[1] == "message 1" and stored.bodystructure["kind"] == "single"


def test_append_with_a_non_synchronizing_literal(client, alice):
    raw = message(1)
    client.send(f"a1 APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    assert client.response().startswith("a1 OK [APPENDUID ")


def test_multiappend_stores_all_or_nothing(client, alice):
    one, two = message(1), message(2)
    client.send(f"a1 APPEND INBOX {{{len(one)}+}}\r\n".encode() + one
                + f" (\\Seen) {{{len(two)}+}}\r\n".encode() + two + b"\r\n")
    inbox = Folder.objects.get(mailbox=alice, name="INBOX")
    assert client.response() == f"a1 OK [APPENDUID {inbox.uidvalidity} 1:2] APPEND completed"
    directory.set_quota(alice, Message.objects.get(uid=1).size * 3)
    client.send(f"a2 APPEND INBOX {{{len(one)}+}}\r\n".encode() + one
                + f" {{{len(two)}+}}\r\n".encode() + two + b"\r\n")
    assert client.response() == "a2 NO [OVERQUOTA] Quota exceeded"
    assert Message.objects.filter(folder=inbox).count() == 2


def test_append_to_a_missing_folder_says_trycreate(client):
    client.send(b"a1 APPEND Nowhere {3+}\r\nabc\r\n")
    assert client.response() == "a1 NO [TRYCREATE] No such folder"


def test_append_refuses_an_empty_message(client):
    client.send(b"a1 APPEND INBOX {0+}\r\n\r\n")
    assert client.response() == "a1 NO [CANNOT] Cannot store an empty message"


def test_append_over_quota(client, alice):
    directory.set_quota(alice, 100)
    raw = message(1) + b"x" * 200
    client.send(f"a1 APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    assert client.response() == "a1 NO [OVERQUOTA] Quota exceeded"


def test_append_of_a_binary_literal8(client, alice):
    raw = b"Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02\r\n"
    client.send(f"a1 APPEND INBOX ~{{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    assert client.response().startswith("a1 OK [APPENDUID ")
    client.ok("SELECT INBOX")
    assert client.ok("FETCH 1 BINARY.PEEK[1]") == [
        "* 1 FETCH (BINARY[1] ~{5}\r\n\x00\x01\x02\r\n)"]


def test_append_to_the_selected_folder_announces_exists(client):
    client.ok("SELECT INBOX")
    raw = message(1)
    client.send(f"a1 APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
    assert client.response() == "* 1 EXISTS"
    assert client.response().startswith("a1 OK [APPENDUID")


def test_quota_root_and_storage_in_kib(client, alice):
    directory.set_quota(alice, 10 * 1024 * 1024)
    deliver(b"Subject: big\r\n\r\n" + b"x" * 5000, "s@remote.test", [alice.pk])
    assert client.run("GETQUOTAROOT INBOX") == ([
        '* QUOTAROOT INBOX ""', '* QUOTA "" (STORAGE 4 10240)'], "OK GETQUOTAROOT completed")
    assert client.run('GETQUOTA ""') == (['* QUOTA "" (STORAGE 4 10240)'],
                                         "OK GETQUOTA completed")
    assert client.run("GETQUOTA other")[1] == "NO [NONEXISTENT] No such quota root"
    assert client.run('SETQUOTA "" (STORAGE 1)')[1] == (
        "NO [NOPERM] Quotas are set by the mail host")
    assert client.run("GETQUOTAROOT Nope")[1] == "NO [NONEXISTENT] No such folder"


def test_an_unlimited_mailbox_has_no_quota_root(client, alice):
    directory.set_quota(alice, 0)
    assert client.ok("GETQUOTAROOT INBOX") == ["* QUOTAROOT INBOX"]
    assert client.run('GETQUOTA ""')[1] == "NO [NONEXISTENT] No such quota root"


def test_namespace(client):
    assert client.run("NAMESPACE") == (['* NAMESPACE (("" "/")) NIL NIL'],
                                       "OK NAMESPACE completed")


def test_imaplib_folder_round_trip(server, alice):
    client = imaplib_client(server)
    assert client.create("Work/Receipts")[0] == "OK"
    assert client.rename("Work", "Jobs")[0] == "OK"
    typ, listing = client.list()
    assert b'(\\HasNoChildren) "/" Jobs/Receipts' in listing
    assert client.append("Jobs/Receipts", None, None, message(1))[0] == "OK"
    assert client.status("Jobs/Receipts", "(MESSAGES)") == (
        "OK", [b"Jobs/Receipts (MESSAGES 1)"])
    assert client.delete("Jobs/Receipts")[0] == "OK"
    client.logout()


def test_imapclient_special_folders_and_quota(server, alice):
    client = imapclient.IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False,
                                   timeout=10)
    client.login(ALICE, PASSWORD)
    assert client.find_special_folder(imapclient.imapclient.SENT) == "Sent"
    assert client.find_special_folder(imapclient.imapclient.TRASH) == "Trash"
    roots, quotas = client.get_quota_root("INBOX")
    assert quotas[0].resource == "STORAGE" and quotas[0].limit == 2 * 1024 * 1024
    assert client.folder_status("INBOX", ["MESSAGES"]) == {b"MESSAGES": 0}
    client.logout()
