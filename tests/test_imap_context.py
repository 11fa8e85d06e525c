"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4): searches kept up to date.

Scripted sessions after the RFC's examples: ESEARCH ADDTO and REMOVEFROM sent between
commands as new mail arrives, other sessions change flags or expunge, the PARTIAL
return option, CANCELUPDATE, tag reuse and the NOUPDATE refusal.
"""

from __future__ import annotations

import time

from mailcore.imap.updating import MAX_CONTEXTS
from mailcore.store.delivery import deliver
from tests.imap_client import done, idle, message, selected


def fill(alice, *subjects: str) -> None:
    for n, subject in enumerate(subjects, 1):
        deliver(message(n, subject), "s@remote.test", [alice.pk])


def test_new_mail_is_added_to_an_updating_search_between_commands(server, alice):
    fill(alice, "a", "b")
    client = selected(server)
    assert client.ok("UID SEARCH RETURN (UPDATE) UNSEEN") == [
        '* ESEARCH (TAG "t3") UID']
    deliver(message(3), "s@remote.test", [alice.pk])
    # No command in progress: the EXISTS that numbers it, then the ADDTO (RFC 5267 4.3.3).
    assert client.response() == "* 3 EXISTS"
    assert client.response() == "* 3 RECENT"
    assert client.response() == '* ESEARCH (TAG "t3") UID ADDTO (0 3)'
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_flag_changes_by_another_session_add_and_remove(server, alice):
    # RFC 5267 section 4.3.3 and 4.3.4: the B01 exchange, with flags set elsewhere.
    fill(alice, "a", "b", "c")
    client = selected(server)
    assert client.ok("UID SEARCH RETURN (UPDATE ALL) FLAGGED") == [
        '* ESEARCH (TAG "t3") UID']
    other = selected(server)
    other.ok("STORE 2:3 +FLAGS.SILENT (\\Flagged)")
    assert client.response() == "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))"
    assert client.response() == "* 3 FETCH (UID 3 FLAGS (\\Flagged \\Recent))"
    assert client.response() == '* ESEARCH (TAG "t3") UID ADDTO (0 2:3)'
    other.ok("STORE 2 -FLAGS.SILENT (\\Flagged)")
    assert client.response() == "* 2 FETCH (UID 2 FLAGS (\\Recent))"
    assert client.response() == '* ESEARCH (TAG "t3") UID REMOVEFROM (0 2)'
    assert client.ok("UID SEARCH FLAGGED") == ["* SEARCH 3"]


def test_an_expunge_elsewhere_is_removed_first_and_expunged_at_the_next_command(
        server, alice):
    fill(alice, "a", "b", "c")
    client = selected(server)
    assert client.ok("SEARCH RETURN (UPDATE COUNT) ALL") == [
        '* ESEARCH (TAG "t3") COUNT 3']
    other = selected(server)
    other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert client.response() == "* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))"
    other.ok("EXPUNGE")
    # Message numbers: REMOVEFROM while 2 still means that message, EXPUNGE only once a
    # command is in progress (RFC 9051 section 7.5.1, RFC 5267 section 4.3.4).
    assert client.response() == '* ESEARCH (TAG "t3") REMOVEFROM (0 2)'
    assert client.run("NOOP") == (["* 2 EXPUNGE"], "OK NOOP completed")


def test_own_store_updates_the_search_before_the_tagged_ok(server, alice):
    fill(alice, "a", "b")
    client = selected(server)
    client.ok("UID SEARCH RETURN (UPDATE) UNSEEN")
    assert client.run("STORE 1 +FLAGS (\\Seen)") == ([
        "* 1 FETCH (FLAGS (\\Seen \\Recent))",
        '* ESEARCH (TAG "t3") UID REMOVEFROM (0 1)'], "OK STORE completed")


def test_sorted_results_are_updated_at_their_positions(server, alice):
    # CONTEXT=SORT: ADDTO and REMOVEFROM name the place in sort order (RFC 5267 4.3.3).
    fill(alice, "b", "d")
    client = selected(server)
    assert client.ok("SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNSEEN") == [
        '* ESEARCH (TAG "t3") ALL 1:2']
    deliver(message(3, "c"), "s@remote.test", [alice.pk])
    assert client.response() == "* 3 EXISTS"
    assert client.response() == "* 3 RECENT"
    assert client.response() == '* ESEARCH (TAG "t3") ADDTO (2 3)'  # b, c, d
    deliver(message(4, "a"), "s@remote.test", [alice.pk])
    assert client.response() == "* 4 EXISTS"
    assert client.response() == "* 4 RECENT"
    assert client.response() == '* ESEARCH (TAG "t3") ADDTO (1 4)'  # a, b, c, d
    other = selected(server)
    other.ok("STORE 1,3 +FLAGS.SILENT (\\Seen)")
    assert client.response() == "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))"
    assert client.response() == "* 3 FETCH (UID 3 FLAGS (\\Seen \\Recent))"
    # b (at 2) leaves, then c (now at 2 as well): one run.
    assert client.response() == '* ESEARCH (TAG "t3") REMOVEFROM (2 1,3)'
    assert client.ok("SORT (SUBJECT) UTF-8 UNSEEN") == ["* SORT 4 2"]


def test_updates_arrive_during_idle(server, alice):
    fill(alice, "a")
    client = selected(server)
    client.ok("UID SEARCH RETURN (UPDATE) ALL")
    idle(client)
    deliver(message(2), "s@remote.test", [alice.pk])
    assert client.response() == "* 2 EXISTS"
    assert client.response() == "* 2 RECENT"
    assert client.response() == '* ESEARCH (TAG "t3") UID ADDTO (0 2)'
    assert done(client) == ([], "OK IDLE completed")


def test_cancelupdate_stops_the_updates(server, alice):
    fill(alice, "a")
    client = selected(server)
    client.ok("UID SEARCH RETURN (UPDATE) ALL")
    assert client.run('CANCELUPDATE "t3"') == ([], "OK CANCELUPDATE completed")
    deliver(message(2), "s@remote.test", [alice.pk])
    time.sleep(0.2)
    assert client.run("NOOP") == (["* 2 EXISTS", "* 2 RECENT"], "OK NOOP completed")


def test_updates_end_when_the_folder_is_closed(server, alice):
    fill(alice, "a")
    client = selected(server)
    client.ok("UID SEARCH RETURN (UPDATE) ALL")
    client.ok("UNSELECT")
    client.ok("SELECT INBOX")
    deliver(message(2), "s@remote.test", [alice.pk])
    time.sleep(0.2)
    assert client.run("NOOP") == (["* 2 EXISTS", "* 1 RECENT"], "OK NOOP completed")


def test_reusing_the_tag_of_an_updating_search_is_bad(server, alice):
    client = selected(server)
    assert client.run("UID SEARCH RETURN (UPDATE) ALL", tag="B01")[1].startswith("OK")
    assert client.run("UID SEARCH RETURN (UPDATE) ALL", tag="B01") == (
        [], "BAD Tag reuse: that tag names an updating search")


def test_past_the_limit_the_search_is_answered_without_updates(server, alice):
    # RFC 5267 section 4.3.1: NO [NOUPDATE "tag"], other return options honoured.
    fill(alice, "a", "b")
    client = selected(server)
    for _ in range(MAX_CONTEXTS):
        client.ok("UID SEARCH RETURN (UPDATE) ALL")
    assert client.run("UID SEARCH RETURN (UPDATE COUNT) ALL", tag="B02") == ([
        '* NO [NOUPDATE "B02"] Too many updating searches; this one is not kept up to date',
        '* ESEARCH (TAG "B02") UID COUNT 2'], "OK UID SEARCH completed")


def test_partial_returns_a_window_of_the_results(server, alice):
    # RFC 5267 section 4.4: ranges in either order, short or empty windows.
    fill(alice, "e", "d", "c", "b", "a")
    client = selected(server)
    assert client.ok("SEARCH RETURN (PARTIAL 1:2) ALL") == [
        '* ESEARCH (TAG "t3") PARTIAL (1:2 1:2)']
    assert client.ok("UID SEARCH RETURN (PARTIAL 10:4 COUNT) ALL") == [
        '* ESEARCH (TAG "t4") UID COUNT 5 PARTIAL (4:10 4:5)']
    assert client.ok("SEARCH RETURN (PARTIAL 9:8) ALL") == [
        '* ESEARCH (TAG "t5") PARTIAL (8:9 NIL)']
    assert client.ok("SORT RETURN (PARTIAL 1:3) (SUBJECT) UTF-8 ALL") == [
        '* ESEARCH (TAG "t6") PARTIAL (1:3 5,4,3)']


def test_partial_with_all_or_twice_is_bad(server, alice):
    client = selected(server)
    for options in ("PARTIAL 1:2 ALL", "PARTIAL 1:2 PARTIAL 3:4", "PARTIAL 0:2",
                    "PARTIAL 1:*"):
        assert client.run(f"SEARCH RETURN ({options}) ALL")[1].startswith("BAD")


def test_context_hint_is_accepted(server, alice):
    fill(alice, "a")
    client = selected(server)
    assert client.ok("SEARCH RETURN (CONTEXT COUNT) ALL") == ['* ESEARCH (TAG "t3") COUNT 1']


def test_pipelined_commands_and_literals_still_work_with_updates_on(server, alice):
    fill(alice, "a")
    client = selected(server)
    client.ok("UID SEARCH RETURN (UPDATE) ALL")
    client.send(b"p1 NOOP\r\np2 UID SEARCH ALL\r\np3 NOOP\r\n")
    assert client.collect("p1") == ([], "OK NOOP completed")
    assert client.collect("p2") == (["* SEARCH 1"], "OK UID SEARCH completed")
    assert client.collect("p3") == ([], "OK NOOP completed")
    mail = message(9).decode()
    client.send(f"a1 APPEND INBOX {{{len(mail)}}}\r\n")
    assert client.response() == "+ Ready for literal data"
    client.send(mail.encode() + b"\r\n")
    untagged, tagged = client.collect("a1")
    assert untagged == ["* 2 EXISTS", '* ESEARCH (TAG "t3") UID ADDTO (0 2)']
    assert tagged.startswith("OK [APPENDUID")


def test_update_with_fetch_attributes_fetches_new_messages_before_addto(server, alice):
    # RFC 5465 section 7 (CONTEXT with NOTIFY): EXISTS, then FETCH, then ESEARCH.
    fill(alice, "a")
    client = selected(server)
    client.ok("UID SEARCH RETURN (UPDATE (UID FLAGS)) UNFLAGGED")
    deliver(message(2), "s@remote.test", [alice.pk])
    assert client.response() == "* 2 EXISTS"
    assert client.response() == "* 2 RECENT"
    assert client.response() == "* 2 FETCH (UID 2 FLAGS (\\Recent))"
    assert client.response() == '* ESEARCH (TAG "t3") UID ADDTO (0 2)'
    other = selected(server)
    other.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert client.response() == "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))"
    assert client.response() == '* ESEARCH (TAG "t3") UID REMOVEFROM (0 1)'
    # Joining again by a flag change is no new message: no FETCH for it.
    other.ok("STORE 1 -FLAGS.SILENT (\\Flagged)")
    assert client.response() == "* 1 FETCH (UID 1 FLAGS (\\Recent))"
    assert client.response() == '* ESEARCH (TAG "t3") UID ADDTO (0 1)'
