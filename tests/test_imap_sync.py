"""A session's own changes need no second look at the store; anyone else's still show.

After its own STORE, APPEND or EXPUNGE, a session knows the folder's new state when
the folder's HIGHESTMODSEQ before the change was its own; when another session changed
the folder in between, the store is asked and both changes are announced.
"""

from __future__ import annotations

import asyncio
from array import array

from mailcore.imap.view import View
from mailcore.store import events
from mailcore.store.delivery import deliver
from mailcore.store.messages import FolderState, MessageState, OpenedFolder
from tests.imap_client import message, selected


def _deliver(alice, count: int) -> None:
    for n in range(1, count + 1):
        deliver(message(n), "s@remote.test", [alice.pk])


def test_own_store_reports_only_itself(server, alice):
    _deliver(alice, 2)
    client = selected(server)
    assert client.ok("STORE 1 +FLAGS (\\Seen)") == ["* 1 FETCH (FLAGS (\\Seen \\Recent))"]
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_store_after_another_sessions_change_reports_both(server, alice):
    _deliver(alice, 2)
    client, other = selected(server), selected(server)
    other.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    untagged = client.ok("STORE 1 +FLAGS (\\Seen)")
    assert "* 1 FETCH (FLAGS (\\Seen \\Recent))" in untagged  # client selected first
    assert "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))" in untagged


def test_own_append_announces_exists_with_new_keywords(server, alice):
    _deliver(alice, 1)
    client = selected(server)
    data = message(9)
    untagged, done = client.run(b"APPEND INBOX ($Work) {%d+}\r\n" % len(data) + data)
    assert done.startswith("OK [APPENDUID ")
    assert untagged[-1] == "* 2 EXISTS"
    assert any(line.startswith("* FLAGS (") and "$Work" in line for line in untagged)
    assert client.ok("FETCH 2 (UID FLAGS)") == ["* 2 FETCH (UID 2 FLAGS ($Work))"]
    assert client.run("NOOP") == ([], "OK NOOP completed")


def test_append_after_another_sessions_append_announces_both(server, alice):
    client, other = selected(server), selected(server)
    data = message(1)
    other.ok(b"APPEND INBOX {%d+}\r\n" % len(data) + data)
    untagged, done = client.run(b"APPEND INBOX {%d+}\r\n" % len(data) + data)
    assert done.startswith("OK [APPENDUID ")
    assert untagged[-2:] == ["* 2 EXISTS", "* 2 RECENT"]  # both told here first
    assert client.ok("FETCH 1:* (UID)") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)"]


def test_own_expunge_and_another_sessions_expunge_are_all_announced(server, alice):
    _deliver(alice, 4)
    client, other = selected(server), selected(server)
    client.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert client.ok("EXPUNGE") == ["* 3 EXPUNGE", "* 1 EXPUNGE"]
    other.ok("NOOP")
    other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")  # UID 4, now message 2
    other.ok("EXPUNGE")
    client.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")  # UID 2
    assert client.ok("EXPUNGE") == ["* 2 EXPUNGE", "* 1 EXPUNGE"]
    assert client.ok("SEARCH ALL") == ["* SEARCH"]


# The pieces: what the hub tells a session, and how a view takes in its own changes ----

def test_a_watch_is_covered_only_by_known_changes_up_to_the_view():
    async def scenario() -> None:
        watch = events.Watch()
        assert watch.covered(1, 5) and not watch.is_set()
        watch.note(1, 5)
        assert watch.is_set() and watch.covered(1, 5) and not watch.covered(1, 4)
        watch.note(2, 90)  # another folder: not this view's concern
        assert watch.covered(1, 5)
        watch.note(None, None)  # the poll, or another process: could be anything
        assert not watch.covered(1, 5)
        watch.clear()
        assert not watch.is_set() and watch.covered(1, 0)

    asyncio.run(scenario())


def _view(modseq: int, uids: list[int]) -> View:
    state = FolderState(1, 1, "INBOX", "", 7, max(uids, default=0) + 1, modseq)
    return View(OpenedFolder(state, array("I", uids), None, ()), "INBOX", read_only=False)


def test_a_view_takes_in_its_own_additions_only_from_its_own_modseq():
    view = _view(10, [1, 2])
    added = [MessageState(9, 3, 11, ("\\Seen", "$Todo"))]
    lines = view.own_additions(added, 10, 11)
    assert lines is not None and lines[-1] == b"* 3 EXISTS\r\n"
    assert view.modseq == 11 and list(view.uids) == [1, 2, 3] and "$Todo" in view.keywords
    assert view.own_additions([MessageState(10, 4, 13, ())], 12, 13) is None
    assert view.modseq == 11 and list(view.uids) == [1, 2, 3]


def test_a_view_takes_in_its_own_removals_only_from_its_own_modseq():
    view = _view(10, [1, 2, 3])
    assert not view.own_removals([2], 9, 11)
    assert view.own_removals([2, 99], 10, 11)
    assert view.modseq == 11 and view.pending == {2}
    assert view.announce_expunges(qresync=False) == [b"* 2 EXPUNGE\r\n"]
