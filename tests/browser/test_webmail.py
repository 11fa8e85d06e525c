"""Webmail in a real browser: sign in, read mail delivered over SMTP, see hostile HTML stay
inert, reply with an attachment, watch new mail and an IMAP flag arrive without reloading,
and drag a message to a folder. On a phone too."""

from __future__ import annotations

import email
import imaplib
import smtplib
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailcore import directory
from mailcore.models import Message
from mailcore.store import messages as store_messages
from mailcore.store.folders import find_folder
from tests.browser.conftest import DESKTOP, PHONE, off_loop, screenshot_dir

pytestmark = pytest.mark.timeout(240)

PASSWORD = "Webmail test pass 2025"
TITLE_MARK = "pwned"


@pytest.fixture
def mail_settings(settings):
    settings.MAIL_HOSTNAME = "mx.host.test"
    settings.WEBMAIL_POLL_SECONDS = 1  # the list looks for changes every second
    settings.WEBMAIL_AUTOSAVE_SECONDS = 3600  # drafts are tested elsewhere
    return settings


def _cast() -> None:
    directory.add_domain("example.test")
    directory.add_mailbox("alice@example.test", PASSWORD, display_name="Alice")
    directory.add_mailbox("bob@example.test", PASSWORD, display_name="Bob")


def _plain_from_bob() -> bytes:
    message = EmailMessage()
    message["From"] = "Bob <bob@example.test>"
    message["To"] = "Alice <alice@example.test>"
    message["Subject"] = "Hello from Bob"
    message["Message-ID"] = "<hello-1@example.test>"
    message.set_content("Hi Alice,\n\nAre you coming on Saturday?\n\nBob\n")
    return message.as_bytes()


def _hostile(base: str) -> bytes:
    html = f"""<html><head><title>{TITLE_MARK}</title>
<meta http-equiv="refresh" content="0;url=/webmail/pwned-refresh">
<base href="http://evil.invalid/">
<style>@import url(/webmail/pwned-import.css); .x {{ background: url(/webmail/pwned-css) }}</style>
</head><body onload="document.title='{TITLE_MARK}'">
<p class="x">Totally harmless newsletter</p>
<script>document.title = '{TITLE_MARK}'; fetch('/webmail/pwned-script');</script>
<img src="x" onerror="document.title='{TITLE_MARK}'; fetch('/webmail/pwned-onerror')">
<svg onload="fetch('/webmail/pwned-svg')"><script>fetch('/webmail/pwned-svg-script')</script></svg>
<iframe src="/webmail/pwned-iframe"></iframe>
<object data="/webmail/pwned-object"></object>
<form action="/webmail/logout/" method="post"><button id="steal">Confirm</button></form>
<a id="jslink" href="javascript:fetch('/webmail/pwned-link')">Click me</a>
<img id="remote" src="{base}/remote-image.png" alt="remote picture">
</body></html>"""
    message = EmailMessage()
    message["From"] = "Mallory <mallory@remote.test>"
    message["To"] = "alice@example.test"
    message["Subject"] = "Great deals inside"
    message.set_content("Plain version")
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


def _smtp(server, sender: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail(sender, ["alice@example.test"], raw)


def _shoot(page, name: str) -> None:
    folder = screenshot_dir()
    if folder is not None:
        page.screenshot(path=str(folder / f"webmail-{name}.png"), full_page=True)


def _uid_of(subject: str, address: str = "alice@example.test", folder: str = "INBOX") -> int:
    mailbox = directory.get_mailbox(address)
    return Message.objects.get(folder=find_folder(mailbox.pk, folder), subject=subject).uid


def _reply_in_bobs_inbox() -> tuple[email.message.EmailMessage, bool]:
    bob = directory.get_mailbox("bob@example.test")
    row = Message.objects.get(folder=find_folder(bob.pk, "INBOX"))
    parsed = email.message_from_bytes(store_messages.read(row), policy=policy.default)
    alice = directory.get_mailbox("alice@example.test")
    sent = Message.objects.get(folder=find_folder(alice.pk, "Sent"))
    return parsed, sent.seen


def _flag_over_imap(server, uid: int) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
    try:
        client.login("alice@example.test", PASSWORD)
        client.select("INBOX")
        status, _ = client.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")
        assert status == "OK"
    finally:
        client.logout()


def test_a_mailbox_reads_and_answers_its_mail_in_the_browser(
        chromium, live_server, server, mail_settings, tmp_path: Path) -> None:
    off_loop(_cast)
    base = live_server.url
    _smtp(server, "bob@example.test", _plain_from_bob())
    _smtp(server, "mallory@remote.test", _hostile(base))

    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # Sign in with the mailbox's own address and password.
    page.goto(base + "/webmail/")
    page.get_by_role("heading", name="Sign in to webmail").wait_for()
    _shoot(page, "01-login")
    page.fill("input[name=address]", "alice@example.test")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="INBOX").wait_for()
    assert page.locator("tr.wm-row").count() == 2
    assert page.locator("tr.wm-row.unread").count() == 2
    _shoot(page, "02-inbox")

    # Read the message Bob sent over SMTP.
    page.get_by_role("link", name="Hello from Bob").click()
    page.get_by_text("Are you coming on Saturday?").wait_for()
    assert "Bob <bob@example.test>" in page.locator(".wm-headers").inner_text()
    _shoot(page, "03-message")

    # The hostile newsletter renders, and nothing in it runs or loads.
    page.goto(base + "/webmail/")
    page.get_by_role("link", name="Great deals inside").click()
    frame = page.frame_locator("#wm-frame")
    frame.get_by_text("Totally harmless newsletter").wait_for()
    frame.locator("#jslink").click()
    frame.get_by_text("Confirm").count() == 0  # noqa: B015 (the form is gone)
    page.wait_for_timeout(1500)
    assert TITLE_MARK not in page.title()
    assert page.title() == "Great deals inside · Webmail"
    inner = next(f for f in page.frames if "/body/" in f.url)
    assert TITLE_MARK not in inner.title()
    assert not [url for url in requested if "pwned" in url or "evil.invalid" in url]
    assert not [url for url in requested if "remote-image.png" in url]
    assert not dialogs
    assert page.get_by_text("Show remote content").is_visible()
    _shoot(page, "04-hostile-blocked")
    # Remote images load once asked for, and still no script runs.
    page.get_by_role("link", name="Show remote content").click()
    page.frame_locator("#wm-frame").get_by_text("Totally harmless newsletter").wait_for()
    page.wait_for_timeout(1000)
    assert [url for url in requested if "remote-image.png" in url]
    assert not [url for url in requested if "pwned" in url]
    assert TITLE_MARK not in page.title()
    _shoot(page, "05-hostile-remote-shown")

    # Reply to Bob (key "r") with an attachment; address suggestions on the way.
    page.goto(base + "/webmail/")
    page.get_by_role("link", name="Hello from Bob").click()
    page.get_by_text("Are you coming on Saturday?").wait_for()
    page.wait_for_load_state()  # the shortcuts' script runs once the page has loaded
    page.keyboard.press("r")
    page.get_by_role("heading", name="Reply").wait_for()
    assert page.input_value("input[name=to]") == "Bob <bob@example.test>"
    assert page.input_value("input[name=subject]") == "Re: Hello from Bob"
    page.fill("input[name=cc]", "bo")
    page.locator(".wm-suggest li", has_text="bob@example.test").wait_for()
    page.keyboard.press("Escape")
    page.fill("input[name=cc]", "")
    page.locator("textarea[name=body]").press("Control+Home")
    page.locator("textarea[name=body]").type("Yes, see you there! Directions attached.")
    page.set_input_files("input[type=file]", files=[{
        "name": "directions.txt", "mimeType": "text/plain",
        "buffer": b"Take the second left after the bakery.\n"}])
    _shoot(page, "06-compose")
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text("Your message is sent.").wait_for()
    reply, sent_seen = off_loop(_reply_in_bobs_inbox)
    assert reply["Subject"] == "Re: Hello from Bob"
    assert reply["In-Reply-To"] == "<hello-1@example.test>"
    assert reply["From"] == "Alice <alice@example.test>"
    assert reply.get_body(("plain",)).get_content().startswith(
        "Yes, see you there! Directions attached.")
    assert "> Are you coming on Saturday?" in reply.get_body(("plain",)).get_content()
    attachments = {p.get_filename(): p.get_content() for p in reply.iter_attachments()}
    assert attachments == {"directions.txt": "Take the second left after the bakery.\n"}
    assert sent_seen

    # New mail appears in the open list without a reload; so does a flag set over IMAP.
    page.goto(base + "/webmail/")
    page.get_by_role("heading", name="INBOX").wait_for()
    bob_uid = off_loop(_uid_of, "Hello from Bob")
    assert page.locator(f'tr.wm-row[data-uid="{bob_uid}"].answered').count() == 1
    follow_up = _plain_from_bob().replace(b"Subject: Hello from Bob", b"Subject: One more thing")
    _smtp(server, "bob@example.test", follow_up)
    page.locator("tr.wm-row", has_text="One more thing").wait_for(timeout=15000)
    assert page.title().startswith("(1) ")
    _flag_over_imap(server, bob_uid)
    page.locator(f'tr.wm-row.flagged[data-uid="{bob_uid}"]').wait_for(timeout=15000)
    _shoot(page, "07-inbox-live")

    # Drag the newsletter to Junk.
    mallory_uid = off_loop(_uid_of, "Great deals inside")
    page.locator(f'tr.wm-row[data-uid="{mallory_uid}"]').drag_to(
        page.locator('.wm-folder[data-role="junk"]'))
    page.get_by_text("moved to Junk").wait_for()
    assert off_loop(_uid_of, "Great deals inside", folder="Junk")

    # The same pages on a phone.
    phone = chromium.new_context(viewport=PHONE, storage_state=context.storage_state())
    phone_page = phone.new_page()
    phone_page.goto(base + "/webmail/")
    phone_page.get_by_role("heading", name="INBOX").wait_for()
    _shoot(phone_page, "phone-inbox")
    box = phone_page.locator("tr.wm-row").first.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone_page.get_by_role("link", name="One more thing").click()
    phone_page.get_by_text("Are you coming on Saturday?").wait_for()
    _shoot(phone_page, "phone-message")
    phone_page.goto(base + "/webmail/compose/")
    _shoot(phone_page, "phone-compose")
    phone.close()

    if screenshot_dir() is not None:
        inbox = off_loop(lambda: find_folder(
            directory.get_mailbox("alice@example.test").pk, "INBOX").pk)
        for name, path in [("08-folders", "/webmail/folders/"),
                           ("09-settings", "/webmail/settings/"),
                           ("10-search", f"/webmail/folders/{inbox}/?q=bob&sort=-size")]:
            page.goto(base + path)
            page.wait_for_load_state()
            _shoot(page, name)

    # Signing out of webmail ends webmail only.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in to webmail").wait_for()
    page.goto(base + "/webmail/settings/")
    page.get_by_role("heading", name="Sign in to webmail").wait_for()
    context.close()


def _drafts_and_bobs_inbox() -> tuple[list[list[str]], list[str]]:
    alice = directory.get_mailbox("alice@example.test")
    drafts = [
        [p.get_filename() for p in email.message_from_bytes(
            store_messages.read(m), policy=policy.default).iter_attachments()]
        for m in Message.objects.filter(folder=find_folder(alice.pk, "Drafts"))]
    bob = directory.get_mailbox("bob@example.test")
    received = list(Message.objects.filter(folder=find_folder(bob.pk, "INBOX"))
                    .values_list("subject", flat=True))
    return drafts, received


def test_a_draft_saves_itself_with_its_attachment_and_is_gone_once_sent(
        chromium, live_server, transactional_db, mail_settings) -> None:
    mail_settings.WEBMAIL_AUTOSAVE_SECONDS = 5
    off_loop(_cast)
    page = chromium.new_context(viewport=DESKTOP).new_page()
    page.goto(live_server.url + "/webmail/compose/")
    page.fill("input[name=address]", "alice@example.test")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="New message").wait_for()
    page.fill("input[name=to]", "bob@example.test")
    page.fill("input[name=subject]", "Plans for the weekend")
    page.fill("textarea[name=body]", "First thoughts...")
    page.set_input_files("input[type=file]", files=[{
        "name": "map.txt", "mimeType": "text/plain", "buffer": b"north\n"}])
    page.get_by_text("Draft saved at").wait_for(timeout=15000)
    drafts, _ = off_loop(_drafts_and_bobs_inbox)
    assert drafts == [["map.txt"]]
    # The file now belongs to the draft: listed, checked, and the file picker is empty.
    assert page.locator("#wm-kept input[name=kept]:checked").count() == 1
    assert page.input_value("input[type=file]") == ""
    page.fill("textarea[name=body]", "Final plan: north.")
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_text("Your message is sent.").wait_for()
    drafts, received = off_loop(_drafts_and_bobs_inbox)
    assert drafts == [] and received == ["Plans for the weekend"]
