"""CATENATE (RFC 4469): APPEND from text and IMAP URLs, with the RFC's example message."""

from __future__ import annotations

import pytest

from mailcore.models import Folder, Message
from mailcore.store import messages as store_messages
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import deliver
from mailcore.store.folders import find_folder
from tests.imap_client import connect, selected

BOUNDARY = b"--------------030308070208000400050907"
DRAFT = (b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: Reply\r\n"
         b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"" + BOUNDARY
         + b"\"\r\n\r\nThis is a multi-part message in MIME format.\r\n--" + BOUNDARY
         + b"\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nI agree.\r\n\r\n--"
         + BOUNDARY + b"--\r\n")
FORWARDED = (b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\n"
             b"Subject: Original\r\n\r\nThe original text.\r\n")


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


@pytest.fixture
def stored(alice):
    """The draft (Drafts UID 1) and the message it forwards (INBOX UID 1)."""
    drafts = find_folder(alice.pk, "Drafts")
    store_messages.append(drafts.pk, DRAFT, ("\\Draft",))
    deliver(FORWARDED, "carol@remote.test", [alice.pk])
    return drafts.uidvalidity, find_folder(alice.pk, "INBOX").uidvalidity


def appended(alice, folder: str = "Drafts") -> bytes:
    message = Message.objects.filter(folder__mailbox=alice, folder__name=folder) \
        .order_by("-uid").first()
    return blob_store().get(message.blob_id)


def test_the_rfcs_example_puts_a_message_together(server, alice, stored):
    # RFC 4469 section 5: the draft's header and first part, the forwarded message as a
    # second part, joined by TEXT literals holding the boundaries.
    drafts, inbox = stored
    client = connect(server, login=True)
    base = b"/Drafts;UIDVALIDITY=%d/;UID=1" % drafts
    middle = b"\r\n--" + BOUNDARY + b"\r\nContent-Type: message/rfc822\r\n\r\n"
    command = (b"APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL \"" + base
               + b"/;section=HEADER\" TEXT " + literal(b"\r\n--" + BOUNDARY + b"\r\n")
               + b" URL \"" + base + b"/;section=1.MIME\" URL \"" + base + b"/;section=1\""
               + b" TEXT " + literal(middle) + b" URL \"/INBOX;UIDVALIDITY=%d/;UID=1\"" % inbox
               + b" TEXT " + literal(b"\r\n--" + BOUNDARY + b"--\r\n") + b")")
    untagged, done = client.run(command)
    assert done.startswith(f"OK [APPENDUID {drafts} 2]"), (untagged, done)
    header = DRAFT[:DRAFT.index(b"\r\n\r\n") + 4]
    part_mime = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    expected = (header + b"\r\n--" + BOUNDARY + b"\r\n" + part_mime + b"I agree.\r\n"
                + middle + FORWARDED + b"\r\n--" + BOUNDARY + b"--\r\n")
    assert appended(alice) == expected
    message = Message.objects.get(folder__mailbox=alice, folder__name="Drafts", uid=2)
    assert message.seen and message.draft and message.keywords == ["$MDNSent"]
    client.ok("SELECT Drafts")
    untagged, _ = client.run("FETCH 2 (BODYSTRUCTURE)")
    assert '"MESSAGE" "RFC822"' in untagged[0].upper()


def test_relative_absolute_and_partial_urls(server, alice, stored):
    drafts, inbox = stored
    client = selected(server)  # INBOX: the base of relative URLs
    url = (b"imap://alice%40example.test@mail.example.test/INBOX;UIDVALIDITY="
           + str(inbox).encode() + b"/;UID=1")
    untagged, done = client.run(
        b'APPEND Drafts CATENATE (URL ";UID=1/;SECTION=HEADER" TEXT ' + literal(b"Hi\r\n")
        + b' URL "' + url + b'/;SECTION=TEXT/;PARTIAL=4.8")')
    assert done.startswith("OK [APPENDUID"), done
    assert appended(alice) == FORWARDED[:FORWARDED.index(b"\r\n\r\n") + 4] + b"Hi\r\noriginal"


@pytest.mark.parametrize("url", [
    "/Drafts;UIDVALIDITY=1/;UID=1",  # UIDVALIDITY does not match
    "/Drafts/;UID=9",  # no such message
    "/Nowhere/;UID=1",  # no such folder
    "/Drafts/;UID=1/;SECTION=7",  # no such part
    "/Drafts/;UID=1/;SECTION=BOGUS",
    ";UID=1",  # relative, and nothing selected
    "imap://bob%40example.test@mail.example.test/INBOX/;UID=1",  # someone else's
    "/Drafts/;UID=1;URLAUTH=anonymous:internal:91354a473744909de610943775f92038",
    "http://example.test/",
])
def test_urls_it_cannot_use_are_refused_with_badurl(server, alice, bob, stored, url):
    deliver(FORWARDED, "carol@remote.test", [bob.pk])
    client = connect(server, login=True)
    before = Message.objects.count()
    untagged, done = client.run(f'APPEND Drafts CATENATE (TEXT {{2+}}\r\nx\n URL "{url}")')
    quoted = url.replace("\\", "\\\\").replace('"', '\\"')
    assert done == f'NO [BADURL "{quoted}"] Cannot use this URL'
    assert Message.objects.count() == before  # nothing stored


def test_multiappend_with_catenate_is_all_or_nothing(server, alice, stored):
    client = connect(server, login=True)
    before = Folder.objects.get(mailbox=alice, name="Drafts").uidnext
    untagged, done = client.run(b"APPEND Drafts " + literal(b"Subject: a\r\n\r\nx\r\n")
                                + b' CATENATE (URL "/Drafts/;UID=99")')
    assert done.startswith("NO [BADURL")
    assert Folder.objects.get(mailbox=alice, name="Drafts").uidnext == before


@pytest.mark.parametrize("command", [
    b"APPEND Drafts CATENATE ()",
    b"APPEND Drafts CATENATE (TEXT)",
    b"APPEND Drafts CATENATE (FILE \"x\")",
    b"APPEND Drafts CATENATE (TEXT ~{1+}\r\nx)",  # TEXT is a literal, not a literal8
    b"APPEND Drafts CATENATE (TEXT {3+}\r\na\0b)",
])
def test_malformed_catenate_is_bad(server, alice, command):
    client = connect(server, login=True)
    assert client.run(command)[1].startswith("BAD ")


def test_too_big_a_result_is_refused(server, alice, stored, settings):
    settings.MESSAGE_SIZE_LIMIT = len(DRAFT) + 10
    client = connect(server, login=True)
    untagged, done = client.run(b'APPEND Drafts CATENATE (URL "/Drafts/;UID=1" URL '
                                b'"/Drafts/;UID=1")')
    assert done.startswith("NO [TOOBIG]"), done


def test_catenate_is_advertised(server, alice):
    assert "CATENATE" in connect(server, login=True).run("CAPABILITY")[0][0].split()
