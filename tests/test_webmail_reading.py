"""Reading mail in webmail: folders, the list, a message's text, HTML, images and attachments."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mailcore import dsn
from mailcore.store import messages as store_messages
from tests.test_webmail_helpers import (
    PNG,
    deliver_to,
    folder,
    make_message,
    message_in,
)


def _body_url(response) -> str:
    return re.search(rb'<iframe[^>]*src="([^"]+)"', response.content).group(1).decode().replace(
        "&amp;", "&")


def test_the_list_shows_sender_subject_date_size_and_markers(signed_in, alice) -> None:
    plain = deliver_to(alice, make_message(subject="Lunch on Friday?",
                                           sender="Carol Jones <carol@remote.test>"))
    deliver_to(alice, make_message(subject="The report", attachments=[
        ("report.pdf", "application/pdf", b"%PDF-1.4 ...")]))
    store_messages.store_flags(folder(alice).pk, [plain], "add", ["\\Flagged"])
    page = signed_in.get(reverse("webmail:folder", args=[folder(alice).pk]))
    html = page.content.decode()
    assert "Carol Jones" in html and "Lunch on Friday?" in html and "The report" in html
    rows = re.findall(r'<tr class="wm-row([^"]*)" data-uid="(\d+)"', html)
    classes = {int(uid): cls for cls, uid in rows}
    assert "unread" in classes[plain] and "flagged" in classes[plain]
    report_row = html.split('data-uid="2"')[1].split("</tr>")[0]
    assert "Has attachments" in report_row
    assert "<time datetime=" in html and "bytes" in html
    # Newest first.
    assert [int(uid) for _, uid in rows] == [2, 1]


def test_folders_show_unread_counts_and_special_use_icons(signed_in, alice) -> None:
    deliver_to(alice, make_message(subject="one"))
    deliver_to(alice, make_message(subject="two"))
    page = signed_in.get(reverse("webmail:folder", args=[folder(alice).pk])).content.decode()
    inbox = folder(alice).pk
    assert re.search(rf'data-unread-for="{inbox}">2<', page)
    for role in ("inbox", "sent", "drafts", "trash", "junk", "archive"):
        assert re.search(rf'data-role="{role}"[^>]*>\s*<svg class="wm-icon"', page), role
    # INBOX first, then the special folders.
    names = re.findall(r'class="wm-folder-name">([^<]+)<', page)
    assert names[:6] == ["INBOX", "Drafts", "Sent", "Archive", "Junk", "Trash"]


def test_opening_a_message_shows_its_headers_and_text_and_marks_it_read(signed_in,
                                                                       alice) -> None:
    uid = deliver_to(alice, make_message(
        subject="Plans", sender="Dan <dan@remote.test>", cc="Eve <eve@remote.test>",
        text="Shall we meet <at noon>?\nSee https://map.test/place?x=1&y=2\n"))
    response = signed_in.get(reverse("webmail:message", args=[folder(alice).pk, uid]))
    html = response.content.decode()
    assert "Dan &lt;dan@remote.test&gt;" in html and "Eve &lt;eve@remote.test&gt;" in html
    assert "Shall we meet &lt;at noon&gt;?" in html
    assert '<a href="https://map.test/place?x=1&amp;y=2" target="_blank"' in html
    assert "<iframe" not in html  # plain text needs no frame
    assert message_in(alice, "INBOX", uid).seen


def test_an_html_message_is_shown_in_a_sandboxed_frame_with_a_strict_policy(signed_in,
                                                                           alice) -> None:
    uid = deliver_to(alice, make_message(
        subject="Hostile", text=None,
        html="<p id=x>Hello</p><script>document.title='pwned'</script>"
             "<img src=x onerror=\"fetch('/pwned')\"><a href=\"javascript:alert(1)\">y</a>"))
    page = signed_in.get(reverse("webmail:message", args=[folder(alice).pk, uid]))
    frame = re.search(rb"<iframe[^>]*>", page.content).group(0).decode()
    # Same origin, so that the page can size the frame to its document; nothing runs in it.
    assert 'sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox"' in frame
    assert "allow-scripts" not in frame
    body = signed_in.get(_body_url(page))
    assert body.status_code == 200
    policy = body.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; img-src data: http://testserver/webmail/inline/;")
    assert "style-src 'unsafe-inline'" in policy and "sandbox" in policy
    assert "script-src" not in policy and "allow-scripts" not in policy
    assert body.headers["X-Content-Type-Options"] == "nosniff"
    assert body.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert body.headers["Referrer-Policy"] == "no-referrer"
    text = body.content.decode()
    assert "Hello" in text
    for bad in ("<script", "onerror", "javascript:", "pwned"):
        assert bad not in text


def test_remote_content_is_blocked_until_the_reader_asks(signed_in, alice) -> None:
    uid = deliver_to(alice, make_message(
        subject="Newsletter", html='<p>Deals</p><img src="https://cdn.shop.test/pixel.gif">'))
    url = reverse("webmail:message", args=[folder(alice).pk, uid])
    page = signed_in.get(url)
    assert b"Show remote content" in page.content
    body = signed_in.get(_body_url(page))
    assert b"cdn.shop.test" not in body.content
    assert "https:" not in body.headers["Content-Security-Policy"].split("img-src")[1].split(";")[0]
    shown = signed_in.get(url + "?remote=1")
    assert b"Show remote content" not in shown.content
    remote_body = signed_in.get(_body_url(shown))
    assert b'src="https://cdn.shop.test/pixel.gif"' in remote_body.content
    assert " https: http:;" in remote_body.headers["Content-Security-Policy"]


def test_inline_images_are_served_through_signed_urls_the_frame_may_load(signed_in,
                                                                        alice) -> None:
    uid = deliver_to(alice, make_message(
        subject="Logo", html='<p>Look</p><img src="cid:logo@shop.test" alt="logo">',
        inline_png="logo@shop.test"))
    page = signed_in.get(reverse("webmail:message", args=[folder(alice).pk, uid]))
    assert b"Show remote content" not in page.content
    assert b"logo.png" not in page.content  # an inline image is not listed as a file
    body = signed_in.get(_body_url(page))
    src = re.search(rb'<img src="([^"]+)"', body.content).group(1).decode()
    assert src.startswith("/webmail/inline/")
    assert ("http://testserver" + src).startswith(
        body.headers["Content-Security-Policy"].split("img-src data: ")[1].split(";")[0])
    # The sandboxed frame sends no cookies: the signed URL alone opens the image.
    image = Client().get(src)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.content == PNG
    assert Client().get(src[:-5] + "xxxx/").status_code == 404


def test_attachments_are_downloaded_with_their_name_and_type(signed_in, alice) -> None:
    uid = deliver_to(alice, make_message(subject="Files", attachments=[
        ("Résumé 2025.pdf", "application/pdf", b"%PDF-1.4 resume"),
        ("page.html", "text/html", b"<script>alert(1)</script>")]))
    page = signed_in.get(reverse("webmail:message", args=[folder(alice).pk, uid]))
    html = page.content.decode()
    assert "Résumé 2025.pdf" in html and "page.html" in html
    links = re.findall(r'href="(/webmail/folders/\d+/\d+/parts/[0-9.]+/)"', html)
    pdf = signed_in.get(links[0])
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    assert "R%C3%A9sum%C3%A9%202025.pdf" in pdf.headers["Content-Disposition"]
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"
    assert pdf.content == b"%PDF-1.4 resume"
    page_html = signed_in.get(links[1])
    assert page_html.headers["Content-Disposition"] == 'attachment; filename="page.html"'
    assert "sandbox" in page_html.headers["Content-Security-Policy"]


def test_show_original_is_the_stored_message_as_plain_text(signed_in, alice) -> None:
    raw = make_message(subject="Raw", text="<b>not html</b>\n")
    uid = deliver_to(alice, raw)
    response = signed_in.get(reverse("webmail:original", args=[folder(alice).pk, uid]))
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.content == raw
    download = signed_in.get(reverse("webmail:original", args=[folder(alice).pk, uid])
                             + "?download=1")
    assert download.headers["Content-Disposition"].startswith("attachment;")


def test_legacy_charsets_and_encoded_words_are_decoded(signed_in, alice) -> None:
    raw = (b"From: =?iso-8859-1?q?Jos=E9?= <jose@remote.test>\r\nTo: alice@example.test\r\n"
           b"Subject: =?utf-8?b?Q2Fmw6kgb3UgdGjDqT8=?=\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\nD=E9j=E0 vu\r\n--b\r\n"
           b"Content-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20list.txt\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n")
    uid = deliver_to(alice, raw)
    html = signed_in.get(reverse("webmail:message", args=[folder(alice).pk, uid])
                         ).content.decode()
    assert "José" in html and "Café ou thé?" in html and "Déjà vu" in html
    assert "€ list.txt" in html


def test_a_message_forwarded_as_an_attachment_is_listed_as_a_file(signed_in, alice) -> None:
    inner = make_message(subject="Inner news")
    outer = (b"From: a@remote.test\r\nTo: alice@example.test\r\nSubject: Fwd\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
             b"--zz\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--zz\r\n"
             b"Content-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--zz--\r\n")
    uid = deliver_to(alice, outer)
    html = signed_in.get(reverse("webmail:message", args=[folder(alice).pk, uid])
                         ).content.decode()
    assert "Inner news.eml" in html
    link = re.search(r'href="(/webmail/folders/\d+/\d+/parts/2/)"', html).group(1)
    assert signed_in.get(link).content.startswith(b"From: Friend")


def test_a_draft_opens_in_the_editor(signed_in, alice) -> None:
    uid = deliver_to(alice, make_message(subject="Unfinished"), "Drafts",
                     flags=("\\Draft", "\\Seen"))
    response = signed_in.get(reverse("webmail:message", args=[folder(alice, "Drafts").pk, uid]))
    assert response.status_code == 302
    assert response.url.endswith(f"?mode=draft&ref={folder(alice, 'Drafts').pk}:{uid}")


@pytest.mark.parametrize("view", ["message", "body", "original"])
def test_a_missing_message_answers_404(signed_in, alice, view) -> None:
    assert signed_in.get(reverse(f"webmail:{view}", args=[folder(alice).pk, 99])
                         ).status_code == 404


@pytest.mark.parametrize("return_full", [False, True])
def test_a_bounces_parts_are_named_for_what_they_are(signed_in, alice, return_full) -> None:
    original = make_message(subject="Lunch?", sender="alice@example.test")
    raw = dsn.build(reporting_mta="mx.example.test", sender="alice@example.test",
                    original=original, arrival=timezone.now(), return_full=return_full,
                    reports=[dsn.RecipientReport("bob@remote.test", "failed", "5.1.1",
                                                 "550 5.1.1 no such user")])
    uid = deliver_to(alice, raw)
    page = signed_in.get(reverse("webmail:message", args=[folder(alice).pk, uid]))
    names = re.findall(r'download="([^"]*)"', page.content.decode())
    returned = "Lunch_.eml" if return_full else "original-message-headers.txt"
    assert names == ["delivery-status.txt", returned]
    status = signed_in.get(reverse("webmail:attachment", args=[folder(alice).pk, uid, "2"]))
    assert b"delivery-status.txt" in status["Content-Disposition"].encode()
    assert b"Final-Recipient: rfc822; bob@remote.test" in status.content
