"""NOTIFY (RFC 5465): events told between commands and during IDLE.

Scripted sessions after the RFC's sections: one session sets what it wants to hear of,
another (or the delivery path) changes the mailbox, and the first receives the untagged
STATUS, LIST, EXISTS, EXPUNGE and FETCH responses without sending a command.
"""

from __future__ import annotations

import time

from mailcore.models import Folder
from mailcore.store import events
from mailcore.store.delivery import deliver
from tests.imap_client import IMAPClient, connect, done, idle, message, selected

APPEND = b"APPEND Drafts {14+}\r\nSubject: x\r\n\r\n"
MESSAGE_EVENTS = "(MessageNew MessageExpunge)"


def notifying(server, groups: str, folder: str | None = "INBOX") -> IMAPClient:
    client = selected(server, folder) if folder else connect(server, login=True)
    assert client.run(f"NOTIFY SET {groups}")[1] == "OK NOTIFY completed"
    return client


def drafts_uidvalidity() -> int:
    return Folder.objects.get(name="Drafts").uidvalidity


def test_notify_is_advertised(server, alice):
    assert "NOTIFY" in connect(server, login=True).run("CAPABILITY")[0][0].split()


def test_new_mail_and_expunges_in_other_folders_come_as_status(server, alice):
    # RFC 5465 sections 5.2 and 5.3: STATUS (UIDNEXT MESSAGES) between commands.
    client = notifying(server, f"(PERSONAL {MESSAGE_EVENTS})")
    other = connect(server, login=True)
    other.ok(APPEND)
    assert client.response() == "* STATUS Drafts (MESSAGES 1 UIDNEXT 2)"
    other.ok("SELECT Drafts")
    other.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")
    assert client.response() == "* STATUS Drafts (MESSAGES 0 UIDNEXT 2)"
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_flag_changes_elsewhere_come_as_status_with_highestmodseq(server, alice):
    # RFC 5465 section 5.1: at least UIDVALIDITY and HIGHESTMODSEQ.
    client = notifying(server, "(PERSONAL (MessageNew MessageExpunge FlagChange))")
    other = connect(server, login=True)
    other.ok(APPEND)
    assert client.response() == "* STATUS Drafts (MESSAGES 1 UIDNEXT 2)"
    other.ok("SELECT Drafts")
    other.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    modseq = Folder.objects.get(name="Drafts").highestmodseq
    assert client.response() == (
        f"* STATUS Drafts (UIDVALIDITY {drafts_uidvalidity()} HIGHESTMODSEQ {modseq})")


def test_status_indicator_reports_each_watched_folder_first(server, alice):
    # RFC 5465 section 3.1: STATUS for each such mailbox before the tagged OK.
    client = connect(server, login=True)
    assert client.run(f"NOTIFY SET STATUS (MAILBOXES (Drafts Trash) {MESSAGE_EVENTS})") == ([
        f"* STATUS Drafts (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {drafts_uidvalidity()})",
        "* STATUS Trash (MESSAGES 0 UIDNEXT 1 UIDVALIDITY "
        f"{Folder.objects.get(name='Trash').uidvalidity})"], "OK NOTIFY completed")


def test_folders_outside_the_groups_are_not_reported(server, alice):
    client = notifying(server, f"(MAILBOXES Trash {MESSAGE_EVENTS})")
    other = connect(server, login=True)
    other.ok(APPEND)
    other.ok(b"APPEND Trash {14+}\r\nSubject: x\r\n\r\n")
    assert client.response() == "* STATUS Trash (MESSAGES 1 UIDNEXT 2)"


def test_selected_folder_new_mail_comes_with_the_fetch_asked_for(server, alice):
    # RFC 5465 section 5.2: EXISTS, then FETCH with the MessageNew fetch-atts.
    client = notifying(server, "(SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
                               " MessageExpunge))")
    deliver(message(1, "hello"), "s@remote.test", [alice.pk])
    assert client.response() == "* 1 EXISTS"
    assert client.response() == "* 1 RECENT"
    assert client.response() == (
        "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: hello\r\n\r\n)")
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_selected_expunges_come_at_once_and_delayed_ones_with_a_command(server, alice):
    for n in (1, 2):
        deliver(message(n), "s@remote.test", [alice.pk])
    at_once = notifying(server, f"(SELECTED {MESSAGE_EVENTS})")
    delayed = notifying(server, f"(SELECTED-DELAYED {MESSAGE_EVENTS})")
    other = selected(server)
    other.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert at_once.response() == "* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))"
    assert delayed.response() == "* 1 FETCH (UID 1 FLAGS (\\Deleted))"
    other.ok("EXPUNGE")
    assert at_once.response() == "* 1 EXPUNGE"  # RFC 5465 section 5.3
    time.sleep(0.2)
    assert delayed.run("NOOP") == (["* 1 EXPUNGE"], "OK NOOP completed")  # section 6.1.2


def test_mailbox_names_created_renamed_and_deleted_come_as_list(server, alice):
    # RFC 5465 section 5.4: LIST, OLDNAME on a rename, \NonExistent once gone.
    client = notifying(server, "(PERSONAL (MailboxName))", folder=None)
    other = connect(server, login=True)
    other.ok("CREATE Lists")
    assert client.response() == '* LIST () "/" Lists'
    other.ok("RENAME Lists Lemonade")
    assert client.response() == '* LIST () "/" Lemonade ("OLDNAME" (Lists))'
    other.ok("DELETE Lemonade")
    assert client.response() == '* LIST (\\NonExistent) "/" Lemonade'


def test_subscription_changes_come_as_list(server, alice):
    # RFC 5465 section 5.5: \Subscribed if and only if subscribed after the change.
    client = notifying(server, "(SUBTREE Drafts (SubscriptionChange))", folder=None)
    other = connect(server, login=True)
    other.ok("UNSUBSCRIBE Drafts")
    assert client.response() == '* LIST () "/" Drafts'
    other.ok("SUBSCRIBE Drafts")
    assert client.response() == '* LIST (\\Subscribed) "/" Drafts'


def test_notifications_arrive_during_idle(server, alice):
    # RFC 5465 section 4.
    client = notifying(server, f"(INBOXES {MESSAGE_EVENTS}) (PERSONAL {MESSAGE_EVENTS})",
                       folder=None)
    idle(client)
    deliver(message(1), "s@remote.test", [alice.pk])
    assert client.response() == "* STATUS INBOX (MESSAGES 1 UIDNEXT 2)"
    assert done(client) == ([], "OK IDLE completed")


def test_selected_new_mail_is_fetched_during_idle(server, alice):
    client = notifying(server, "(SELECTED (MessageNew (FLAGS) MessageExpunge))")
    idle(client)
    deliver(message(1), "s@remote.test", [alice.pk])
    assert client.response() == "* 1 EXISTS"
    assert client.response() == "* 1 RECENT"
    assert client.response() == "* 1 FETCH (UID 1 FLAGS (\\Recent))"
    assert done(client) == ([], "OK IDLE completed")


def test_notify_none_stops_the_notifications(server, alice):
    client = notifying(server, f"(PERSONAL {MESSAGE_EVENTS})")
    assert client.run("NOTIFY NONE") == ([], "OK NOTIFY completed")
    other = connect(server, login=True)
    other.ok(APPEND)
    time.sleep(0.2)
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_unsupported_events_are_refused_with_badevent(server, alice):
    client = connect(server, login=True)
    assert client.run("NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))") == (
        [], "NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName "
            "SubscriptionChange)] Unsupported event")


def test_event_combinations_the_rfc_forbids_are_bad(server, alice):
    client = connect(server, login=True)
    for groups in ("(PERSONAL (MessageNew))", "(PERSONAL (MessageExpunge))",
                   "(PERSONAL (FlagChange))", "(SELECTED (MailboxName))",
                   f"(SELECTED {MESSAGE_EVENTS}) (SELECTED-DELAYED {MESSAGE_EVENTS})",
                   "(EVERYWHERE (MailboxName))"):
        assert client.run(f"NOTIFY SET {groups}")[1].startswith("BAD"), groups
    for command in ("NOTIFY", "NOTIFY SET", "NOTIFY GET", "NOTIFY SET (PERSONAL (MailboxName)",
                    "NOTIFY SET (MAILBOXES) (MailboxName)"):
        assert client.run(command)[1].startswith("BAD"), command
    assert client.run("NOOP")[1] == "OK NOOP completed"


def test_too_many_mailboxes_is_refused_with_notificationoverflow(server, alice, settings):
    settings.IMAP_NOTIFY_MAX_MAILBOXES = 2
    client = connect(server, login=True)
    assert client.run(f"NOTIFY SET (PERSONAL {MESSAGE_EVENTS})") == (
        [], "NO [NOTIFICATIONOVERFLOW] Too many mailboxes to watch")
    assert client.run(f"NOTIFY SET (MAILBOXES (Drafts Trash) {MESSAGE_EVENTS})")[1].startswith(
        "OK")


def test_growing_past_the_limit_turns_notify_off(server, alice, settings):
    # RFC 5465 section 5.8: untagged OK [NOTIFICATIONOVERFLOW], then as NOTIFY NONE.
    settings.IMAP_NOTIFY_MAX_MAILBOXES = 2
    client = notifying(server, f"(SUBTREE Lists {MESSAGE_EVENTS}) (PERSONAL (MailboxName))",
                       folder=None)
    other = connect(server, login=True)
    other.ok("CREATE Lists/a")
    assert client.response() == '* LIST () "/" Lists'
    assert client.response() == '* LIST () "/" Lists/a'
    other.ok("CREATE Lists/b")
    assert client.response() == (
        "* OK [NOTIFICATIONOVERFLOW] Too many mailboxes to watch; NOTIFY is off")
    other.ok("CREATE Other")
    time.sleep(0.2)
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_notify_watches_are_released(server, alice):
    # Each NOTIFY SET replaces the last one's watch; the session's end releases it.
    client = notifying(server, f"(PERSONAL {MESSAGE_EVENTS})", folder=None)
    client.ok(f"NOTIFY SET (INBOXES {MESSAGE_EVENTS})")
    client.ok(f"NOTIFY SET (INBOXES {MESSAGE_EVENTS})")
    assert len(events.hub.waiters[alice.pk]) == 2  # the session's own, and NOTIFY's
    client.ok("NOTIFY NONE")
    assert len(events.hub.waiters[alice.pk]) == 1
    client.ok(f"NOTIFY SET (INBOXES {MESSAGE_EVENTS})")
    client.run("LOGOUT")
    deadline = time.monotonic() + 5
    while events.hub.waiters.get(alice.pk) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not events.hub.waiters.get(alice.pk)


def test_changes_made_by_another_process_are_told_between_commands(server_process, alice):
    # The delivery runs here, the session in a real server process: the change hub's
    # poll (or Redis) carries it over, and the session is told without a command.
    client = IMAPClient(server_process.port("imap"))
    client.login()
    client.ok("SELECT Drafts")
    assert client.run(f"NOTIFY SET (INBOXES {MESSAGE_EVENTS})")[1] == "OK NOTIFY completed"
    deliver(message(1), "s@remote.test", [alice.pk])
    assert client.response() == "* STATUS INBOX (MESSAGES 1 UIDNEXT 2)"


def test_sessions_that_hang_up_leave_no_watch_behind(server, alice):
    clients = [notifying(server, f"(PERSONAL {MESSAGE_EVENTS})") for _ in range(20)]
    assert len(events.hub.waiters[alice.pk]) == 40
    for client in clients:
        client.close()  # no LOGOUT
    deadline = time.monotonic() + 5
    while events.hub.waiters.get(alice.pk) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not events.hub.waiters.get(alice.pk)
