"""Acting on mail in webmail: flags, moving, Trash, Archive, Junk, and the folders themselves."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailcore.models import Folder, Message
from mailcore.store.folders import remove_folder, subscriptions
from tests.test_webmail_helpers import (
    deliver_to,
    folder,
    make_message,
)


def _act(client, mailbox, uids, action, name="INBOX", **extra):
    return client.post(reverse("webmail:act", args=[folder(mailbox, name).pk]),
                       {"uid": uids, "action": action, **extra})


def _subjects(mailbox, name: str) -> list[str]:
    return list(Message.objects.filter(folder=folder(mailbox, name)).order_by("uid")
                .values_list("subject", flat=True))


@pytest.fixture
def three(alice) -> list[int]:
    return [deliver_to(alice, make_message(subject=f"Message {n}")) for n in (1, 2, 3)]


@pytest.mark.parametrize(("action", "field", "value"), [
    ("read", "seen", True), ("flag", "flagged", True)])
def test_selected_messages_are_flagged_together(signed_in, alice, three, action, field,
                                                 value) -> None:
    response = _act(signed_in, alice, three[:2], action)
    assert response.status_code == 302
    rows = dict(Message.objects.filter(folder=folder(alice)).values_list("uid", field))
    assert rows == {three[0]: value, three[1]: value, three[2]: not value}


def test_unread_and_unflag_take_the_flags_back(signed_in, alice, three) -> None:
    _act(signed_in, alice, three, "read")
    _act(signed_in, alice, three, "flag")
    _act(signed_in, alice, [three[0]], "unread")
    _act(signed_in, alice, [three[0]], "unflag")
    first = Message.objects.get(folder=folder(alice), uid=three[0])
    assert not first.seen and not first.flagged


def test_an_action_reports_what_it_did(signed_in, alice, three) -> None:
    page = _act(signed_in, alice, three, "read", next="/webmail/")
    assert page.url == "/webmail/"
    followed = signed_in.get(reverse("webmail:folder", args=[folder(alice).pk]))
    assert b"3 messages marked read." in followed.content


def test_nothing_selected_is_explained(signed_in, alice, three) -> None:
    _act(signed_in, alice, [], "read")
    page = signed_in.get(reverse("webmail:folder", args=[folder(alice).pk]))
    assert b"Select one or more messages first." in page.content


def test_messages_move_to_the_chosen_folder(signed_in, alice, three) -> None:
    projects = Folder.objects.create(mailbox=alice, name="Projects", uidvalidity=7)
    _act(signed_in, alice, three[1:], "move", target=projects.pk)
    assert _subjects(alice, "INBOX") == ["Message 1"]
    assert _subjects(alice, "Projects") == ["Message 2", "Message 3"]


def test_moving_to_another_mailboxs_folder_is_refused(signed_in, alice, bob, three) -> None:
    response = _act(signed_in, alice, three, "move", target=folder(bob).pk)
    assert response.status_code == 404
    assert len(_subjects(alice, "INBOX")) == 3


def test_delete_moves_to_trash_and_delete_in_trash_is_for_good(signed_in, alice,
                                                               three) -> None:
    _act(signed_in, alice, [three[0]], "delete")
    assert _subjects(alice, "Trash") == ["Message 1"]
    trash_uid = Message.objects.get(folder=folder(alice, "Trash")).uid
    _act(signed_in, alice, [trash_uid], "delete", name="Trash")
    assert _subjects(alice, "Trash") == []
    alice.refresh_from_db()
    assert alice.used_bytes == sum(Message.objects.filter(folder__mailbox=alice)
                                   .values_list("size", flat=True))


def test_emptying_trash_deletes_everything_in_it(signed_in, alice, three) -> None:
    _act(signed_in, alice, three, "delete")
    response = signed_in.post(reverse("webmail:empty", args=[folder(alice, "Trash").pk]))
    assert response.status_code == 302
    assert _subjects(alice, "Trash") == []


def test_only_trash_and_junk_can_be_emptied(signed_in, alice, three) -> None:
    signed_in.post(reverse("webmail:empty", args=[folder(alice).pk]))
    assert len(_subjects(alice, "INBOX")) == 3


def test_archive_and_junk_move_to_their_special_folders(signed_in, alice, three) -> None:
    _act(signed_in, alice, [three[0]], "archive")
    _act(signed_in, alice, [three[1]], "junk")
    assert _subjects(alice, "Archive") == ["Message 1"]
    assert _subjects(alice, "Junk") == ["Message 2"]
    junk_uid = Message.objects.get(folder=folder(alice, "Junk")).uid
    _act(signed_in, alice, [junk_uid], "notjunk", name="Junk")
    assert _subjects(alice, "INBOX") == ["Message 3", "Message 2"]


def test_a_missing_trash_is_made_again(signed_in, alice, three) -> None:
    remove_folder(alice.pk, "Trash")
    _act(signed_in, alice, [three[0]], "delete")
    trash = Folder.objects.get(mailbox=alice, name="Trash")
    assert trash.special_use == "\\Trash"
    assert _subjects(alice, "Trash") == ["Message 1"]


def test_mark_all_read_reads_the_whole_folder(signed_in, alice, three) -> None:
    signed_in.post(reverse("webmail:read_all", args=[folder(alice).pk]))
    assert not Message.objects.filter(folder=folder(alice), seen=False).exists()


def test_folders_are_created_nested_renamed_and_deleted(signed_in, alice) -> None:
    url = reverse("webmail:folders")
    assert signed_in.post(url, {"name": "Work"}).status_code == 302
    work = Folder.objects.get(mailbox=alice, name="Work")
    signed_in.post(url, {"name": "2025", "parent": work.pk})
    assert Folder.objects.filter(mailbox=alice, name="Work/2025").exists()
    signed_in.post(reverse("webmail:folder_rename", args=[work.pk]), {"name": "Job"})
    names = set(Folder.objects.filter(mailbox=alice).values_list("name", flat=True))
    assert {"Job", "Job/2025"} <= names and "Work" not in names
    # Subscribed as they are made, so IMAP clients that show subscribed folders show them.
    assert {"Job", "Job/2025"} <= set(subscriptions(alice.pk))
    child = Folder.objects.get(mailbox=alice, name="Job/2025")
    deliver_to(alice, make_message(), "Job/2025")
    signed_in.post(reverse("webmail:folder_delete", args=[child.pk]))
    assert not Folder.objects.filter(pk=child.pk).exists()
    assert "Job/2025" not in subscriptions(alice.pk)


def test_folder_names_are_checked(signed_in, alice) -> None:
    url = reverse("webmail:folders")
    assert b"Folder already exists" in signed_in.post(url, {"name": "Sent"}).content
    assert b"cannot contain" in signed_in.post(url, {"name": "a/b"}).content
    assert b"Invalid characters" in signed_in.post(url, {"name": "bad*name"}).content


def test_inbox_and_special_folders_keep_their_names(signed_in, alice) -> None:
    for name in ("INBOX", "Sent", "Trash"):
        signed_in.post(reverse("webmail:folder_rename", args=[folder(alice, name).pk]),
                       {"name": "Other"})
        signed_in.post(reverse("webmail:folder_delete", args=[folder(alice, name).pk]))
    names = set(Folder.objects.filter(mailbox=alice).values_list("name", flat=True))
    assert {"INBOX", "Sent", "Trash"} <= names and "Other" not in names
    page = signed_in.get(reverse("webmail:folders"))
    assert b"is a special folder" in page.content


def test_actions_need_a_post(signed_in, alice, three) -> None:
    url = reverse("webmail:act", args=[folder(alice).pk])
    assert signed_in.get(url + f"?uid={three[0]}&action=delete").status_code == 405
