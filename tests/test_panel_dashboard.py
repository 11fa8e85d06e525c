"""The operator's dashboard and the statistics behind it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.mail import send_mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from mailcore import directory, stats
from mailcore.models import OutboundMessage, OutboundRecipient, SenderCount, TrafficCount
from mailcore.queue import bounces
from mailcore.sending import outgoing
from mailcore.store.delivery import deliver
from panel.dashboard import charts
from tests.panel_cast import *  # noqa: F403
from tests.panel_cast import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def system_mail(settings) -> None:
    """Send the panel's mail through mailcore.sending.system, as in production."""
    settings.EMAIL_BACKEND = "mailcore.sending.system.EmailBackend"


def test_record_adds_to_the_current_hours_counter() -> None:
    stats.record("received")
    stats.record("received", 4)
    stats.record("rejected")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    assert TrafficCount.objects.get(hour=hour, kind="received").count == 5
    assert TrafficCount.objects.get(hour=hour, kind="rejected").count == 1
    with pytest.raises(ValueError):
        stats.record("eaten")


@pytest.mark.django_db(transaction=True)
def test_record_is_atomic_across_threads() -> None:
    def work() -> None:
        try:
            for _ in range(10):
                stats.record("sent")
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert TrafficCount.objects.get(kind="sent").count == 40


def _hour_ago(hours: int):
    return (timezone.now() - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)


def test_series_cover_48_hours_per_hour_and_30_days_per_day() -> None:
    now = timezone.now()
    TrafficCount.objects.create(hour=_hour_ago(0), kind="sent", count=3)
    TrafficCount.objects.create(hour=_hour_ago(47), kind="system", count=1)
    TrafficCount.objects.create(hour=_hour_ago(48), kind="bounced", count=2)
    TrafficCount.objects.create(hour=_hour_ago(24 * 29), kind="received", count=5)
    TrafficCount.objects.create(hour=_hour_ago(24 * 31), kind="sent", count=100)
    hourly = stats.hourly()
    assert len(hourly.labels) == 48
    assert hourly.counts["sent"][-1] == 3 and hourly.counts["system"][0] == 1
    assert hourly.totals == {"received": 0, "sent": 3, "system": 1, "bounced": 0,
                             "rejected": 0}
    daily = stats.daily()
    assert len(daily.labels) == 30 and daily.labels[-1] == now.date()
    assert daily.counts["sent"][-1] == 3
    assert daily.totals == {"received": 5, "sent": 3, "system": 1, "bounced": 2,
                            "rejected": 0}


def test_charts_are_inline_svg_with_a_line_per_kind_and_a_stacked_bar_per_day() -> None:
    stats.record("received", 7)
    stats.record("system", 2)
    line = charts.line_chart(stats.hourly(), "per hour")
    assert line.startswith("<svg") and line.count("<polyline") == len(stats.KINDS)
    bars = charts.bar_chart(stats.daily(), "per day")
    # One segment per kind with mail today, stacked: the system segment sits on received.
    assert bars.count("<rect") == 2
    assert "received: 7" in bars and "system: 2" in bars
    assert "System mail" in charts.legend(stats.daily())


def test_charts_fit_a_phone_with_readable_labels() -> None:
    # A 390 px phone shows the drawing about 350 px wide: 480 units keep 13-unit labels
    # above 9 px, and a tick every 6 hours (8 labels) keeps them apart.
    line = charts.line_chart(stats.hourly(), "per hour")
    assert 'viewBox="0 0 480 220"' in line
    assert line.count('class="axis x-label"') == 8
    bars = charts.bar_chart(stats.daily(), "per day")
    assert bars.count('class="axis x-label"') == 6
    # The last label (today) ends inside the drawing instead of being cut in half.
    assert bars.removesuffix("</svg>").endswith('text-anchor="end">' + charts._x_label(
        stats.daily().labels[-1]) + "</text>")


def test_axis_numbers_stay_short_enough_for_the_margin() -> None:
    assert [charts._count_label(v) for v in (0, 800, 1200, 8000, 16000)] == [
        "0", "800", "1.2k", "8k", "16k"]


def test_sent_counts_every_submitted_message_local_or_remote(alice_mailbox) -> None:
    principal = directory.log_in("hello@alice.test", PASSWORD, "127.0.0.1")
    other = directory.add_mailbox("other@alice.test", PASSWORD)
    for remote in ([], ["x@remote.test"]):
        outgoing.submit(b"From: hello@alice.test\r\nSubject: hi\r\n\r\nhi\r\n",
                        principal=principal, mail_from="hello@alice.test",
                        local_ids=[other.pk], remote=remote, received=b"",
                        return_path=b"Return-Path: <hello@alice.test>\r\n")
    assert stats.hourly().totals["sent"] == 2
    assert stats.hourly().totals["system"] == 0
    assert stats.busiest_senders() == [(alice_mailbox, 2)]


def test_system_mail_is_its_own_series_and_labelled_in_the_queue(alice_mailbox,
                                                                 system_mail) -> None:
    send_mail("Confirm your address", "Click", None, ["hello@alice.test", "new@remote.test"])
    bounces.send_dsn(b"Subject: failure\r\n\r\nx\r\n", "someone@remote.test")
    totals = stats.hourly().totals
    assert totals["system"] == 2 and totals["sent"] == 0
    assert stats.busiest_senders() == []
    assert list(OutboundMessage.objects.values_list("system", flat=True)) == [True, True]


def _queue(sender, address: str, state: str, response: str = "", age_hours: int = 0):
    raw = b"Subject: x\r\n\r\nx\r\n"
    delivered = deliver(raw, sender.address, [], [address], sender_mailbox_id=sender.pk)
    message = OutboundMessage.objects.get(pk=delivered.outbound_id)
    OutboundMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(hours=age_hours))
    OutboundRecipient.objects.filter(message=message).update(
        state=state, last_response=response, status="5.1.1" if response else "")
    return message


def test_carol_sees_the_dashboard(as_carol, alice_domain, alice_mailbox) -> None:
    directory.add_domain("unverified.test", verified=False)
    _queue(alice_mailbox, "a@remote.test", "queued", age_hours=3)
    _queue(alice_mailbox, "b@remote.test", "failed", "550 5.1.1 no such user here")
    stats.record_submission(alice_mailbox.pk)
    stats.record_submission(alice_mailbox.pk)
    stats.record("received", 12)
    response = as_carol.get(reverse("dashboard"))
    assert response.status_code == 200
    page = response.content.decode()
    context = response.context
    assert context["totals"].domains == 2 and context["totals"].mailboxes == 1
    assert context["queue"].depth == 1
    assert "3\xa0hours" in page  # the oldest queued message's age
    assert "550 5.1.1 no such user here" in page
    assert context["senders"] == [(alice_mailbox, 2)]
    assert "<svg" in page and "Messages per hour" in page
    assert "unverified.test" in page and reverse("domain_verify", args=[
        context["unverified"][0].pk]) in page
    assert reverse("admin:mailcore_domain_change", args=[alice_domain.pk]) in page
    assert reverse("admin:mailcore_mailbox_change", args=[alice_mailbox.pk]) in page


def test_storage_per_domain_is_largest_first(alice_user, alice_domain, alice_mailbox) -> None:
    other = directory.add_domain("big.test", owner=alice_user)
    box = directory.add_mailbox("x@big.test", "pw-pw-pw-pw")
    box.used_bytes = 10_000
    box.save()
    assert [d.name for d in stats.storage_by_domain()] == ["big.test", "alice.test"]
    assert stats.storage_by_domain()[0].storage == 10_000
    assert other.owner == alice_user


def test_busiest_senders_count_only_the_last_day(alice_mailbox) -> None:
    SenderCount.objects.create(hour=_hour_ago(24), mailbox=alice_mailbox, count=5)
    assert stats.busiest_senders() == []
    SenderCount.objects.create(hour=_hour_ago(23), mailbox=alice_mailbox, count=2)
    assert stats.busiest_senders() == [(alice_mailbox, 2)]


def test_a_failed_system_message_is_shown_as_system_mail(as_carol, alice_mailbox,
                                                        system_mail) -> None:
    send_mail("Confirm your address", "Click", None, ["new@remote.test"])
    OutboundRecipient.objects.update(state="failed", last_response="550 5.1.2 no domain")
    page = as_carol.get(reverse("dashboard")).content.decode()
    assert "550 5.1.2 no domain" in page and "system mail" in page


def test_customers_get_404_from_the_dashboard(as_alice) -> None:
    assert as_alice.get(reverse("dashboard")).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client) -> None:
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_the_dashboard_counts_inbound_mail_by_verdict(as_carol, settings) -> None:
    settings.RSPAMD_URL = "http://127.0.0.1:11333"
    stats.record("inbox", 5)
    stats.record("junk", 2)
    stats.record("rejected", 3)
    stats.record("deferred", 1)
    old = (timezone.now() - timedelta(days=9)).replace(minute=0, second=0, microsecond=0)
    TrafficCount.objects.create(hour=old, kind="junk", count=50)  # older than the 7 days
    assert stats.verdicts(7) == {"inbox": 5, "junk": 2, "rejected": 3, "deferred": 1,
                                 "unscanned": 0}
    response = as_carol.get(reverse("dashboard"))
    assert response.context["verdicts"][:2] == [("Inbox", 5), ("Junk", 2)]
    assert "Inbound mail by verdict" in response.content.decode()
    assert "No spam scoring" not in response.content.decode()
    # The verdicts are not traffic: the charts' totals leave them out.
    assert set(stats.hourly(1).totals) == {"received", "sent", "system", "bounced", "rejected"}


def test_the_dashboard_says_when_there_is_no_spam_scoring(as_carol, settings) -> None:
    settings.RSPAMD_URL = ""
    page = as_carol.get(reverse("dashboard")).content.decode()
    assert "No spam scoring: RSPAMD_URL is not set" in page
