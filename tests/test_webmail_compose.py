"""Writing mail in webmail: sending through submission, Bcc, replies, forwards, drafts, limits."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mailcore import directory
from mailcore.models import Message, OutboundMessage
from mailcore.principal import Principal
from mailcore.sending import outgoing
from mailcore.sending.senders import sender_addresses
from mailcore.store import messages as store_messages
from mailcore.webclient import compose, contacts
from tests.test_webmail_helpers import (
    deliver_to,
    folder,
    make_message,
    message_in,
)


def _post(client, action: str = "send", **fields):
    data = {"from_address": "alice@example.test", "to": "", "cc": "", "bcc": "",
            "subject": "", "body": "", action: "1", **fields}
    return client.post(reverse("webmail:compose"), data)


def _only(mailbox, name: str = "INBOX") -> Message:
    rows = list(Message.objects.filter(folder=folder(mailbox, name)))
    assert len(rows) == 1, [r.subject for r in rows]
    return rows[0]


def _parsed(message: Message) -> email.message.EmailMessage:
    return email.message_from_bytes(store_messages.read(message), policy=policy.default)


def test_a_message_to_a_local_mailbox_is_delivered_signed_and_kept_in_sent(signed_in, alice,
                                                                          bob) -> None:
    response = _post(signed_in, to="Bob <bob@example.test>", subject="Lunch?",
                     body="Shall we?\nA.")
    assert response.status_code == 302
    delivered = _only(bob)
    raw = store_messages.read(delivered)
    assert raw.startswith(b"Return-Path: <alice@example.test>\r\n")
    assert b"(mailcore webmail) with HTTP" in raw
    assert b"DKIM-Signature:" in raw and b"d=example.test" in raw
    parsed = _parsed(delivered)
    assert parsed["From"] == "Alice <alice@example.test>"
    assert parsed["Subject"] == "Lunch?"
    assert parsed.get_content().replace("\r\n", "\n") == "Shall we?\nA.\n"
    sent = _only(alice, "Sent")
    assert sent.seen and sent.message_id == delivered.message_id
    followed = signed_in.get(response.url)
    assert b"Your message is sent." in followed.content


def test_a_message_to_a_remote_address_is_queued(signed_in, alice, kicked) -> None:
    _post(signed_in, to="friend@remote.test", subject="Hi")
    outbound = OutboundMessage.objects.get()
    assert outbound.mail_from == "alice@example.test"
    assert list(outbound.recipients.values_list("address", flat=True)) == ["friend@remote.test"]
    assert kicked == [outbound.pk]


def test_bcc_recipients_get_the_message_but_nobody_sees_them(signed_in, alice, bob,
                                                             kicked) -> None:
    directory.add_mailbox("carol@example.test", "carol password 123")
    _post(signed_in, to="bob@example.test", bcc="carol@example.test, hidden@remote.test",
          subject="Party")
    carol = directory.get_mailbox("carol@example.test")
    for mailbox in (bob, carol):
        raw = store_messages.read(_only(mailbox))
        assert b"\nBcc:" not in raw and b"carol@example.test" not in raw.split(b"\r\n\r\n")[0]
    queued = OutboundMessage.objects.get()
    assert list(queued.recipients.values_list("address", flat=True)) == ["hidden@remote.test"]
    from mailcore.store.blobs import blob_store
    assert b"Bcc:" not in blob_store().get(queued.blob_id)
    # The writer's own copy remembers whom it went to.
    assert _parsed(_only(alice, "Sent"))["Bcc"] == "carol@example.test, hidden@remote.test"


def test_attachments_are_uploaded_with_their_names_and_types(signed_in, alice, bob) -> None:
    signed_in.post(reverse("webmail:compose"), {
        "from_address": "alice@example.test", "to": "bob@example.test", "subject": "Files",
        "body": "Attached.", "send": "1",
        "attachments": [SimpleUploadedFile("plan.pdf", b"%PDF-1.4 plan", "application/pdf"),
                        SimpleUploadedFile("notes €.txt", b"notes", "")]})
    parsed = _parsed(_only(bob))
    files = {p.get_filename(): (p.get_content_type(), p.get_content())
             for p in parsed.iter_attachments()}
    assert files == {"plan.pdf": ("application/pdf", b"%PDF-1.4 plan"),
                     "notes €.txt": ("text/plain", "notes")}


def test_a_reply_quotes_the_original_and_threads_it(signed_in, alice) -> None:
    uid = deliver_to(alice, make_message(subject="Meeting", sender="Dan <dan@remote.test>",
                                         text="Can you come at 3?\n> earlier\n"))
    page = signed_in.get(reverse("webmail:compose") + f"?mode=reply&ref={folder(alice).pk}:{uid}")
    html = page.content.decode()
    assert 'value="Dan &lt;dan@remote.test&gt;"' in html
    assert 'value="Re: Meeting"' in html
    assert ("On Mon, 02 Jun 2025 at 10:00, Dan wrote:\n&gt; Can you come at 3?\n"
            "&gt;&gt; earlier") in html
    original = message_in(alice, "INBOX", uid)
    assert f'value="{original.message_id}"'.replace("<", "&lt;").replace(">", "&gt;") in html


def test_a_reply_goes_to_the_reply_to_address_when_there_is_one(alice) -> None:
    uid = deliver_to(alice, make_message(headers={"Reply-To": "list@remote.test"}))
    draft = compose.prefill(Principal.of(alice), "reply", compose.MessageRef(folder(alice).pk, uid))
    assert draft.to == "list@remote.test"


def test_reply_all_answers_everyone_but_oneself(alice) -> None:
    uid = deliver_to(alice, make_message(
        sender="Dan <dan@remote.test>", to="alice@example.test, Eve <eve@remote.test>",
        cc="Fay <fay@remote.test>, alice@example.test"))
    draft = compose.prefill(Principal.of(alice), "reply_all",
                            compose.MessageRef(folder(alice).pk, uid))
    assert draft.to == "Dan <dan@remote.test>, Eve <eve@remote.test>"
    assert draft.cc == "Fay <fay@remote.test>"


def test_replying_to_ones_own_sent_message_goes_to_its_recipients(alice) -> None:
    uid = deliver_to(alice, make_message(sender="Alice <alice@example.test>",
                                         to="Dan <dan@remote.test>"), "Sent")
    draft = compose.prefill(Principal.of(alice), "reply",
                            compose.MessageRef(folder(alice, "Sent").pk, uid))
    assert draft.to == "Dan <dan@remote.test>"


def test_sending_a_reply_flags_the_original_answered(signed_in, alice, bob) -> None:
    uid = deliver_to(alice, make_message(sender="bob@example.test", subject="Question"))
    ref = f"{folder(alice).pk}:{uid}"
    _post(signed_in, to="bob@example.test", subject="Re: Question", body="Yes.",
          replying=ref, in_reply_to="<q@remote.test>", references="<q@remote.test>")
    assert message_in(alice, "INBOX", uid).answered
    reply = _parsed(_only(bob))
    assert reply["In-Reply-To"] == "<q@remote.test>"
    assert reply["References"] == "<q@remote.test>"


def test_forwarding_inline_carries_the_text_and_the_attachments(signed_in, alice, bob) -> None:
    uid = deliver_to(alice, make_message(subject="Invoice", text="Please pay.\n",
                                         attachments=[("invoice.pdf", "application/pdf",
                                                       b"%PDF invoice")]))
    ref = compose.MessageRef(folder(alice).pk, uid)
    draft = compose.prefill(Principal.of(alice), "forward", ref)
    assert draft.subject == "Fwd: Invoice"
    assert "---------- Forwarded message ----------" in draft.body
    assert "Please pay." in draft.body
    page = signed_in.get(reverse("webmail:compose") + f"?mode=forward&ref={ref}")
    assert b"invoice.pdf" in page.content
    _post(signed_in, to="bob@example.test", subject=draft.subject, body=draft.body,
          kept=[str(k) for k in draft.kept], forwarding=str(ref))
    parsed = _parsed(_only(bob))
    assert [p.get_filename() for p in parsed.iter_attachments()] == ["invoice.pdf"]
    assert "$Forwarded" in message_in(alice, "INBOX", uid).keywords


def test_forwarding_as_an_attachment_keeps_the_original_byte_for_byte(signed_in, alice,
                                                                     bob) -> None:
    original = make_message(subject="Signed news", text="Caf\u00e9 au lait\n")
    uid = deliver_to(alice, original)
    ref = f"{folder(alice).pk}:{uid}"
    _post(signed_in, to="bob@example.test", subject="Fwd: Signed news", attached=ref)
    parsed = _parsed(_only(bob))
    attached = next(parsed.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert attached.get_filename() == "Signed news.eml"
    raw = store_messages.read(_only(bob))
    assert original in raw


def test_a_saved_draft_replaces_the_previous_one(signed_in, alice, bob) -> None:
    response = _post(signed_in, "save", to="bob@", subject="Half done", body="So far")
    assert response.status_code == 302
    first = _only(alice, "Drafts")
    assert first.draft and first.seen
    assert response.url.endswith(f"?mode=draft&ref={folder(alice, 'Drafts').pk}:{first.uid}")
    data = signed_in.post(reverse("webmail:autosave"), {
        "from_address": "alice@example.test", "to": "bob@example.test", "subject": "Half done",
        "body": "So far, and more", "draft": f"{first.folder_id}:{first.uid}",
        "attachments": [SimpleUploadedFile("a.txt", b"aaa", "text/plain")]}).json()
    second = _only(alice, "Drafts")
    assert second.uid != first.uid
    assert data["draft"] == f"{second.folder_id}:{second.uid}"
    assert data["attachments"] == [{"ref": f"{second.folder_id}:{second.uid}:2", "name": "a.txt",
                                    "size": 3}]
    # Reopened, the draft fills the form again; sending it removes it from Drafts.
    page = signed_in.get(reverse("webmail:compose") + f"?mode=draft&ref={data['draft']}")
    assert b"So far, and more" in page.content and b"a.txt" in page.content
    _post(signed_in, to="bob@example.test", subject="Half done", body="Done",
          draft=data["draft"], kept=[data["attachments"][0]["ref"]])
    assert not Message.objects.filter(folder=folder(alice, "Drafts")).exists()
    assert [p.get_filename() for p in _parsed(_only(alice, "Sent")).iter_attachments()] == \
        ["a.txt"]


def test_a_draft_can_be_discarded(signed_in, alice) -> None:
    _post(signed_in, "save", subject="Never mind")
    draft = _only(alice, "Drafts")
    signed_in.post(reverse("webmail:discard"), {"draft": f"{draft.folder_id}:{draft.uid}"})
    assert not Message.objects.filter(folder=folder(alice, "Drafts")).exists()


def test_discard_deletes_only_drafts(signed_in, alice) -> None:
    uid = deliver_to(alice, make_message())
    signed_in.post(reverse("webmail:discard"), {"draft": f"{folder(alice).pk}:{uid}"})
    assert Message.objects.filter(folder=folder(alice), uid=uid).exists()


@pytest.mark.parametrize(("fields", "reason"), [
    ({"to": ""}, "Add at least one recipient."),
    ({"to": "not-an-address"}, "“not-an-address” is not an email address."),
    ({"to": "nobody@example.test"}, "There is no mailbox nobody@example.test."),
])
def test_a_refused_message_says_why_and_is_kept_as_a_draft(signed_in, alice, fields,
                                                          reason) -> None:
    response = _post(signed_in, subject="Important", body="Keep me", **fields)
    assert response.status_code == 400
    assert reason.encode() in response.content.replace(b"&#x27;", b"'")
    assert b"It is kept in Drafts." in response.content
    assert _only(alice, "Drafts").subject == "Important"
    assert not Message.objects.filter(folder=folder(alice, "Sent")).exists()


def test_the_hourly_send_limit_is_enforced(signed_in, alice, bob) -> None:
    alice.send_limit_per_hour = 1
    alice.save()
    assert _post(signed_in, to="bob@example.test", subject="one").status_code == 302
    response = _post(signed_in, to="bob@example.test", subject="two")
    assert b"You have sent your 1 messages for this hour" in response.content
    assert outgoing.send_limit_reached(Principal.of(alice))
    assert Message.objects.filter(folder=folder(bob)).count() == 1


def test_the_recipient_limit_is_enforced(signed_in, alice) -> None:
    alice.max_recipients = 2
    alice.save()
    response = _post(signed_in, to="a@remote.test, b@remote.test, c@remote.test")
    assert b"at most 2 recipients" in response.content


def test_a_sender_address_that_is_not_ones_own_is_refused(signed_in, alice, bob) -> None:
    response = _post(signed_in, from_address="bob@example.test", to="bob@example.test")
    assert response.status_code == 400
    assert not Message.objects.filter(folder=folder(bob)).exists()


@pytest.fixture
def bigbank(alice):
    """An unproven claim on bigbank.test by the customer who owns example.test."""
    from django.contrib.auth import get_user_model

    from mailcore.models import Domain

    owner = get_user_model().objects.create_user("owner", "owner@customers.test", "pw")
    Domain.objects.filter(pk=alice.domain_id).update(owner=owner)
    return directory.add_domain("bigbank.test", owner=owner, verified=False)


def test_sending_for_an_unverified_domain_is_refused_with_the_reason(bigbank, bob) -> None:
    security = directory.add_mailbox("security@bigbank.test", "pw", domain=bigbank)
    draft = compose.Draft(to="bob@example.test, friend@remote.test", subject="Urgent")
    with pytest.raises(compose.ComposeError,
                       match="You may not send as security@bigbank.test: domain not verified"):
        compose.send(Principal.of(security), draft, peer_ip="127.0.0.1", secure=True)
    assert not Message.objects.filter(folder=folder(bob)).exists()
    assert not Message.objects.filter(folder=folder(security, "Sent")).exists()
    assert OutboundMessage.objects.count() == 0


def test_an_alias_in_an_unverified_domain_is_not_offered_as_sender(signed_in, alice, bob,
                                                                    bigbank) -> None:
    directory.add_alias("security@bigbank.test", ["alice@example.test"], domain=bigbank)
    assert sender_addresses(Principal.of(alice)) == ["alice@example.test"]
    response = _post(signed_in, from_address="security@bigbank.test", to="bob@example.test")
    assert response.status_code == 400
    assert not Message.objects.filter(folder=folder(bob)).exists()


def test_an_alias_that_delivers_to_the_mailbox_may_be_the_sender(signed_in, alice,
                                                                 bob) -> None:
    directory.add_alias("sales@example.test", ["alice@example.test"])
    assert sender_addresses(Principal.of(alice)) == ["alice@example.test", "sales@example.test"]
    _post(signed_in, from_address="sales@example.test", to="bob@example.test")
    assert _parsed(_only(bob))["From"] == "Alice <sales@example.test>"


def test_a_message_too_big_to_send_is_refused(signed_in, alice, settings) -> None:
    settings.MESSAGE_SIZE_LIMIT = 2000
    response = _post(signed_in, to="friend@remote.test", body="x" * 5000)
    assert b"too big to send" in response.content


def test_suggestions_come_from_recent_correspondents_newest_first(signed_in, alice) -> None:
    deliver_to(alice, make_message(sender="Old Friend <old@remote.test>"))
    deliver_to(alice, make_message(sender="Alice <alice@example.test>",
                                   to="Olga <olga@remote.test>, other@remote.test"), "Sent")
    deliver_to(alice, make_message(sender="Oscar <oscar@remote.test>"))
    assert contacts.recent(Principal.of(alice)) == [
        "Oscar <oscar@remote.test>", "Olga <olga@remote.test>", "other@remote.test",
        "Old Friend <old@remote.test>"]
    response = signed_in.get(reverse("webmail:suggest") + "?q=ol")
    assert response.json() == {"addresses": ["Olga <olga@remote.test>",
                                             "Old Friend <old@remote.test>"]}


def test_the_compose_page_offers_suggestions_and_autosave(signed_in, alice) -> None:
    html = signed_in.get(reverse("webmail:compose")).content.decode()
    assert re.search(r'data-autosave-url="/webmail/compose/autosave/"', html)
    assert html.count('data-suggest="1"') == 3
    assert 'enctype="multipart/form-data"' in html


def test_another_mailboxs_attachments_and_messages_cannot_be_sent_on(signed_in, alice,
                                                                    bob) -> None:
    uid = deliver_to(bob, make_message(to="bob@example.test", subject="Bob's payslip",
                                       attachments=[("payslip.pdf", "application/pdf",
                                                     b"%PDF salary")]))
    bobs = folder(bob).pk
    kept = _post(signed_in, to="alice@example.test", kept=[f"{bobs}:{uid}:2"])
    assert b"An attachment is no longer there" in kept.content
    attached = _post(signed_in, to="alice@example.test", attached=f"{bobs}:{uid}")
    assert b"The message to forward is no longer there." in attached.content
    assert not Message.objects.filter(folder=folder(alice)).exists()
    prefilled = signed_in.get(reverse("webmail:compose") + f"?mode=forward&ref={bobs}:{uid}")
    assert prefilled.status_code == 404


def test_files_bigger_than_a_message_may_be_are_refused_before_reading(signed_in, alice,
                                                                      settings) -> None:
    settings.MESSAGE_SIZE_LIMIT = 1000
    response = signed_in.post(reverse("webmail:compose"), {
        "from_address": "alice@example.test", "to": "friend@remote.test", "send": "1",
        "attachments": [SimpleUploadedFile("big.bin", b"x" * 2000, "application/octet-stream")]})
    assert response.status_code == 400
    assert b"The files are too big to send" in response.content
