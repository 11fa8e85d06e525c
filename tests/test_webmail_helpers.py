"""Shared pieces of the webmail tests (no tests here): messages to read, a signed-in browser.

Test modules import what they use: `from tests.test_webmail_helpers import sign_in, ...`.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from django.test import Client
from django.urls import reverse

from mailcore.models import Folder, Mailbox, Message
from mailcore.store import messages as store_messages
from mailcore.store.delivery import deliver
from mailcore.store.folders import find_folder
from tests.conftest import PASSWORD

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff"
       b"\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")


def make_message(subject: str = "Hello", sender: str = "Friend <friend@remote.test>",
                 to: str = "alice@example.test", text: str | None = "Hi there!\n",
                 html: str | None = None, attachments: list[tuple[str, str, bytes]] = (),
                 inline_png: str | None = None, cc: str = "",
                 headers: dict[str, str] | None = None) -> bytes:
    """Return a message as a sender's client would write it."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = "Mon, 02 Jun 2025 10:00:00 +0000"
    message["Message-ID"] = f"<{abs(hash((subject, text, html)))}@remote.test>"
    for name, value in (headers or {}).items():
        message[name] = value
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
        if inline_png:
            html_part = message.get_payload()[-1] if message.is_multipart() else message
            html_part.add_related(PNG, maintype="image", subtype="png", cid=f"<{inline_png}>")
    for name, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def deliver_to(mailbox: Mailbox, raw: bytes, folder: str = "INBOX",
               flags: tuple[str, ...] = ()) -> int:
    """Put a message in a folder of the mailbox; return its UID."""
    if folder == "INBOX" and not flags:
        delivered = deliver(raw, "friend@remote.test", [mailbox.pk])
        return Message.objects.get(pk=delivered.message_ids[0]).uid
    _, uid = store_messages.append(find_folder(mailbox.pk, folder).pk, raw, flags)
    return uid


def folder(mailbox: Mailbox, name: str = "INBOX") -> Folder:
    return find_folder(mailbox.pk, name)


def message_in(mailbox: Mailbox, name: str, uid: int) -> Message:
    return Message.objects.get(folder=folder(mailbox, name), uid=uid)


def sign_in(client: Client, address: str, password: str = PASSWORD) -> Client:
    response = client.post(reverse("webmail:login"), {"address": address,
                                                      "password": password})
    assert response.status_code == 302, response.content[:2000]
    return client


def csrf_client(address: str, password: str = PASSWORD) -> tuple[Client, str]:
    """Return a client enforcing CSRF, signed in, and the token its pages carry."""
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("webmail:login"))
    token = page.cookies["csrftoken"].value
    response = client.post(reverse("webmail:login"), {
        "address": address, "password": password, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    return client, client.cookies["csrftoken"].value
