"""Sessions see each other's changes: IDLE, NOOP, SMTP and POP3, other processes."""

from __future__ import annotations

import poplib
import smtplib
import time

import imapclient

from mailcore.models import Folder
from mailcore.store import messages
from mailcore.store.delivery import deliver
from tests.conftest import PASSWORD
from tests.imap_client import ALICE, IMAPClient, done, idle, message, selected


def test_an_smtp_delivery_shows_up_in_idle(server, alice):
    client = selected(server)
    idle(client)
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", [ALICE], message(1))
    assert client.response() == "* 1 EXISTS"
    assert time.monotonic() - started < 2
    assert client.response() == "* 1 RECENT"  # the first to hear of it (RFC 3501 2.3.2)
    assert done(client) == ([], "OK IDLE completed")


def test_flag_changes_and_expunges_by_another_session_show_in_idle(server, alice):
    for n in range(1, 4):
        deliver(message(n), "s@remote.test", [alice.pk])
    watcher = selected(server)  # selects first: the messages are \\Recent here
    actor = selected(server)
    idle(watcher)
    actor.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert watcher.response() == "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))"
    actor.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert watcher.response() == "* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))"
    actor.ok("EXPUNGE")
    assert watcher.response() == "* 1 EXPUNGE"
    assert done(watcher) == ([], "OK IDLE completed")
    assert watcher.ok("FETCH 1:* (UID)") == ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)"]


def test_no_expunge_while_answering_fetch_store_or_search(server, alice):
    for n in range(1, 4):
        deliver(message(n), "s@remote.test", [alice.pk])
    watcher = selected(server)
    actor = selected(server)
    actor.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    actor.ok("EXPUNGE")
    # RFC 9051 section 7.5.1: the numbers stay as they were until a command allows it.
    # RFC 2180 section 4.1.1: the expunged message is still served until announced.
    assert watcher.ok("FETCH 1:* (UID)") == [
        "* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]
    assert watcher.run("SEARCH ALL") == (["* SEARCH 2 3"], "OK SEARCH completed")
    assert watcher.ok("STORE 3 +FLAGS (\\Seen)") == ["* 3 FETCH (FLAGS (\\Seen \\Recent))"]
    # A UID command may announce it.
    assert watcher.run("UID SEARCH ALL") == (["* SEARCH 2 3", "* 1 EXPUNGE"],
                                             "OK UID SEARCH completed")
    assert watcher.ok("FETCH 1:* (UID)") == ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)"]


def test_new_messages_are_announced_after_any_command(server, alice):
    client = selected(server)
    deliver(message(1), "s@remote.test", [alice.pk])
    time.sleep(0.1)
    assert client.run("CHECK") == (["* 1 EXISTS", "* 1 RECENT"], "OK CHECK completed")
    deliver(message(2), "s@remote.test", [alice.pk])
    time.sleep(0.1)
    assert client.run("FETCH 1 (UID)") == (["* 1 FETCH (UID 1)", "* 2 EXISTS", "* 2 RECENT"],
                                           "OK FETCH completed")


def test_a_pop3_deletion_appears_as_expunge(server, alice):
    for n in range(1, 3):
        deliver(message(n), "s@remote.test", [alice.pk])
    client = selected(server)
    idle(client)
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    pop.dele(1)
    pop.quit()
    assert client.response() == "* 1 EXPUNGE"
    assert done(client) == ([], "OK IDLE completed")


def test_idle_without_a_selected_folder_just_waits_for_done(server, alice):
    client = selected(server)
    client.ok("UNSELECT")
    idle(client)
    deliver(message(1), "s@remote.test", [alice.pk])
    assert done(client) == ([], "OK IDLE completed")


def test_idle_ended_by_anything_but_done_is_bad(server, alice):
    client = selected(server)
    idle(client)
    client.send("a2 NOOP")
    assert client.collect("i1") == ([], "BAD Expected DONE to end IDLE")


def test_idle_times_out(server, alice, settings):
    settings.IMAP_IDLE_TIMEOUT = 0.5
    client = selected(server)
    idle(client)
    assert client.response() == "* BYE Autologout; idle for too long"
    assert client.closed()


def test_a_change_made_by_another_process_reaches_idle_within_a_second(server_process, alice):
    client = IMAPClient(server_process.port("imap"))
    client.login()
    client.ok("SELECT INBOX")
    idle(client)
    time.sleep(0.6)  # the other process's poller has seen the mailbox's first state
    started = time.monotonic()
    deliver(message(1), "s@remote.test", [alice.pk])
    assert client.response() == "* 1 EXISTS"
    assert time.monotonic() - started < 1.5
    assert client.response() == "* 1 RECENT"
    messages.store_flags(Folder.objects.get(mailbox=alice, name="INBOX").pk, [1], "add",
                         ["\\Seen"])
    assert client.response() == "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))"
    assert done(client) == ([], "OK IDLE completed")


def test_imapclient_idle(server, alice):
    client = imapclient.IMAPClient("127.0.0.1", port=server.port("imap"), ssl=False, timeout=10)
    client.login(ALICE, PASSWORD)
    client.select_folder("INBOX")
    client.idle()
    deliver(message(1), "s@remote.test", [alice.pk])
    responses = client.idle_check(timeout=5)
    client.idle_done()
    assert (1, b"EXISTS") in responses
    client.logout()


def test_a_session_whose_folder_is_deleted_elsewhere_is_closed(server, alice):
    watcher = selected(server)
    watcher.ok("CREATE Work")
    watcher.ok("SELECT Work")
    actor = selected(server)
    actor.ok("DELETE Work")
    watcher.send("a1 NOOP")
    assert watcher.response() == (
        "* BYE [CLOSED] The selected folder was deleted; closing connection")
    assert watcher.closed()
