"""The operator's pages at the sizes they are read at: the dashboard's charts on a 390 px
phone, the outbound queue's columns on a 1,280 px screen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from mailcore import directory, stats
from mailcore.models import OutboundRecipient
from mailcore.store.delivery import deliver
from tests.browser.conftest import DESKTOP, PHONE, off_loop, screenshot_dir
from tests.panel_cast import WEB_PASSWORD

pytestmark = pytest.mark.timeout(120)

RAW = b"From: sales@busy.test\r\nTo: x@remote.test\r\nSubject: Offer\r\n\r\nHello\r\n"


def _operator_with_traffic_and_a_queue() -> None:
    carol = get_user_model().objects.create_user(
        "carol", "carol@ops.test", WEB_PASSWORD, is_staff=True, is_superuser=True)
    carol.emailaddress_set.create(email=carol.email, verified=True, primary=True)
    directory.add_domain("busy.test")
    box = directory.add_mailbox("sales@busy.test", "a mailbox password 1")
    for kind in stats.KINDS:
        stats.record(kind, 1234)
    stats.record_submission(box.pk)
    for n in range(3):
        deliver(RAW, "sales-department-with-a-long-name@busy.test", [],
                [f"recipient-number-{n}-with-a-long-address@a-remote-domain.example"],
                sender_mailbox_id=box.pk)
    deliver(RAW, "", [], ["someone@remote.test"], system=True)
    OutboundRecipient.objects.update(
        attempts=7, next_attempt_at=timezone.now() + timedelta(hours=1),
        remote_mta="mx1.a-remote-domain.example",
        last_response="451 4.7.1 " + "Please try again later, greylisted by policy " * 5)


def _log_in(context, base: str, path: str):
    page = context.new_page()
    page.goto(base + path)
    page.fill("input[name=login]", "carol@ops.test")
    page.fill("input[name=password]", WEB_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    return page


def _shoot(page, name: str) -> None:
    folder = screenshot_dir()
    if folder is not None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _overflow(page) -> int:
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


def test_the_dashboard_charts_fit_a_phone(chromium, live_server, transactional_db,
                                          settings) -> None:
    settings.REQUIRE_STAFF_2FA = False
    off_loop(_operator_with_traffic_and_a_queue)
    page = _log_in(chromium.new_context(viewport=PHONE), live_server.url, "/dashboard/")
    page.get_by_role("heading", name="Operator dashboard").wait_for()
    _shoot(page, "phone-dashboard-charts")
    assert _overflow(page) <= 0
    for chart in page.locator("svg.chart-svg").all():
        box = chart.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        # The axis labels scale with the drawing: at least 9 px tall on the phone.
        label = chart.locator("text.axis").first.bounding_box()
        assert label["height"] >= 9


def test_the_queue_shows_state_attempts_and_responses_at_1280px(
        chromium, live_server, transactional_db, settings) -> None:
    settings.REQUIRE_STAFF_2FA = False
    off_loop(_operator_with_traffic_and_a_queue)
    page = _log_in(chromium.new_context(viewport=DESKTOP), live_server.url,
                   "/admin/mailcore/outboundmessage/")
    page.locator("#result_list").wait_for()
    # The table scrolls inside its box: a column is seen if it ends within the box.
    _shoot(page, "admin-queue-1280")
    visible = page.locator("#changelist-form .results").bounding_box()
    right = min(visible["x"] + visible["width"], DESKTOP["width"])
    for column in ("recipient_states", "recipient_attempts", "next_attempt",
                   "recipient_responses"):
        box = page.locator(f"th.column-{column}").bounding_box()
        assert box["x"] + box["width"] <= right, column
    assert _overflow(page) <= 0
    assert page.locator(".queue-system").count() == 1
    assert page.get_by_text("(bounce)").count() == 0
