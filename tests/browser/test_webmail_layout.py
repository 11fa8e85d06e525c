"""The webmail message page at the sizes it is read at: an HTML message's frame as tall as
its content (no blank area, no inner scrolling), and the toolbar in one row on a phone."""

from __future__ import annotations

import pytest

from mailcore import directory
from mailcore.store.delivery import deliver
from tests.browser.conftest import DESKTOP, PHONE, off_loop, screenshot_dir
from tests.test_webmail_helpers import make_message

pytestmark = pytest.mark.timeout(180)

PASSWORD = "Webmail layout pass 2025"


def _mail() -> dict[str, int]:
    directory.add_domain("example.test")
    box = directory.add_mailbox("alice@example.test", PASSWORD, display_name="Alice")
    long_html = "".join(f"<p>Paragraph {n} of the newsletter.</p>" for n in range(80))
    uids = {}
    for name, html in (("short", "<p>Just one line.</p>"), ("long", long_html)):
        deliver(make_message(subject=name, text=None, html=html), "friend@remote.test",
                [box.pk])
        uids[name] = len(uids) + 1
    return uids


def _sign_in(context, base: str):
    page = context.new_page()
    page.goto(base + "/webmail/")
    page.fill("input[name=address]", "alice@example.test")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="INBOX").wait_for()
    return page


def _open(page, subject: str) -> None:
    page.get_by_role("link", name=subject, exact=True).click()
    page.locator("#wm-frame").wait_for()
    # Sized once the frame's own document has loaded (webmail.js).
    page.wait_for_function("""() => {
        const f = document.getElementById('wm-frame'), d = f.contentDocument;
        return f.style.height && d.URL.includes('/body') && d.readyState === 'complete'
            && Math.abs(f.clientHeight - d.documentElement.getBoundingClientRect().height) < 5;
        }""")


def _frame_fit(page) -> dict:
    return page.evaluate("""() => {
        const f = document.getElementById('wm-frame');
        const root = f.contentDocument.documentElement;
        return {frame: f.clientHeight, content: Math.ceil(root.getBoundingClientRect().height),
                inner_scroll: root.scrollHeight > f.clientHeight + 1}; }""")


def _shoot(page, name: str) -> None:
    folder = screenshot_dir()
    if folder is not None:
        page.screenshot(path=str(folder / f"webmail-layout-{name}.png"), full_page=True)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_html_frame_is_as_tall_as_its_message(chromium, live_server, transactional_db,
                                                  viewport) -> None:
    off_loop(_mail)
    page = _sign_in(chromium.new_context(viewport=viewport), live_server.url)
    _open(page, "short")
    short = _frame_fit(page)
    assert not short["inner_scroll"] and short["frame"] < 150, short  # no blank area
    page.go_back()
    _open(page, "long")
    long = _frame_fit(page)
    _shoot(page, f"long-{viewport['width']}")
    assert not long["inner_scroll"] and long["frame"] > viewport["height"], long
    assert abs(long["frame"] - long["content"]) <= 4, long


def test_on_a_phone_the_message_toolbar_is_one_row(chromium, live_server,
                                                   transactional_db) -> None:
    off_loop(_mail)
    page = _sign_in(chromium.new_context(viewport=PHONE), live_server.url)
    _open(page, "short")
    _shoot(page, "phone-toolbar")
    boxes = page.evaluate("""() => Array.from(document.querySelectorAll(
        '.wm-msg-toolbar > .button, .wm-msg-toolbar form > .button, '
        + '.wm-msg-toolbar .wm-more > summary'))
        .filter(b => b.offsetParent !== null)
        .map(b => { const r = b.getBoundingClientRect();
                    return {top: Math.round(r.top), right: r.right}; })""")
    assert len(boxes) >= 5 and len({b["top"] for b in boxes}) == 1, boxes
    assert max(b["right"] for b in boxes) <= PHONE["width"], boxes
    assert page.locator(".wm-msg-toolbar").bounding_box()["height"] < 50
    # The rarer actions are a tap away.
    page.get_by_text("More").click()
    page.get_by_role("button", name="Mark unread").wait_for()
    page.get_by_role("link", name="Reply all").wait_for()
