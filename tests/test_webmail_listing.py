"""Listing a folder in webmail: sorting, paging, searching, a big folder, and live updates."""

from __future__ import annotations

import re
from datetime import date, timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mailcore.models import Message, MessageText
from mailcore.store import fulltext
from mailcore.store import messages as store_messages
from mailcore.webclient import listing
from tests.test_webmail_helpers import (
    deliver_to,
    folder,
    make_message,
)


def _uids(response) -> list[int]:
    return [int(u) for u in re.findall(r'<tr class="wm-row[^"]*" data-uid="(\d+)"',
                                       response.content.decode())]


def _three(alice) -> None:
    deliver_to(alice, make_message(subject="banana split", sender="Zoe <zoe@remote.test>",
                                   text="short\n"))
    deliver_to(alice, make_message(subject="apple pie", sender="Adam <adam@remote.test>",
                                   text="medium " * 50))
    deliver_to(alice, make_message(subject="cherry tart", sender="Mia <mia@remote.test>",
                                   text="long " * 500 + "\nthe secret word is rhubarb\n"))


def test_the_newest_mail_comes_first_and_columns_sort_both_ways(signed_in, alice) -> None:
    _three(alice)
    url = reverse("webmail:folder", args=[folder(alice).pk])
    assert _uids(signed_in.get(url)) == [3, 2, 1]
    assert _uids(signed_in.get(url + "?sort=date")) == [1, 2, 3]
    assert _uids(signed_in.get(url + "?sort=from")) == [2, 3, 1]
    assert _uids(signed_in.get(url + "?sort=-from")) == [1, 3, 2]
    assert _uids(signed_in.get(url + "?sort=subject")) == [2, 1, 3]
    assert _uids(signed_in.get(url + "?sort=-size")) == [3, 2, 1]
    assert _uids(signed_in.get(url + "?sort=bogus")) == [3, 2, 1]


def test_pages_hold_the_configured_number_of_messages(signed_in, alice, settings) -> None:
    settings.WEBMAIL_PAGE_SIZE = 2
    _three(alice)
    url = reverse("webmail:folder", args=[folder(alice).pk])
    first = signed_in.get(url)
    assert _uids(first) == [3, 2]
    assert b'rel="next"' in first.content and b"1\xe2\x80\x932 of 3" in first.content
    second = signed_in.get(url + "?page=2")
    assert _uids(second) == [1]
    assert b'rel="prev"' in second.content and b'rel="next"' not in second.content
    assert _uids(signed_in.get(url + "?page=zebra")) == [3, 2]


def test_search_matches_sender_recipients_or_subject(signed_in, alice) -> None:
    _three(alice)
    url = reverse("webmail:folder", args=[folder(alice).pk])
    assert _uids(signed_in.get(url + "?q=ADAM")) == [2]
    assert _uids(signed_in.get(url + "?q=tart")) == [3]
    assert _uids(signed_in.get(url + "?q=alice%40example")) == [3, 2, 1]  # the To field
    assert _uids(signed_in.get(url + "?sender=zoe&subject=split")) == [1]
    assert _uids(signed_in.get(url + "?sender=zoe&subject=pie")) == []
    assert b"No messages match." in signed_in.get(url + "?q=nothing-like-it").content


def test_search_by_date_range_unread_and_flagged(signed_in, alice) -> None:
    _three(alice)
    inbox = folder(alice)
    old = timezone.now() - timedelta(days=30)
    Message.objects.filter(folder=inbox, uid=1).update(internal_date=old)
    store_messages.store_flags(inbox.pk, [2], "add", ["\\Seen", "\\Flagged"])
    url = reverse("webmail:folder", args=[inbox.pk])
    today = timezone.localdate()
    assert _uids(signed_in.get(url + f"?since={today - timedelta(days=1)}")) == [3, 2]
    assert _uids(signed_in.get(url + f"?until={old.date()}")) == [1]
    assert _uids(signed_in.get(url + "?unread=on")) == [3, 1]
    assert _uids(signed_in.get(url + "?flagged=on")) == [2]


def test_body_search_reads_message_text_and_html(signed_in, alice) -> None:
    _three(alice)
    deliver_to(alice, make_message(subject="html only", text=None,
                                   html="<p>Secret <b>Rhubarb</b> recipe</p>"))
    url = reverse("webmail:folder", args=[folder(alice).pk])
    response = signed_in.get(url + "?body=rhubarb")
    assert _uids(response) == [4, 3]
    if not fulltext.enabled():  # on Postgres the index answers: no blob is read
        assert b"The text of all 4 matching messages was searched." in response.content


def test_the_search_box_finds_words_in_the_message_text_too(signed_in, alice) -> None:
    _three(alice)
    url = reverse("webmail:folder", args=[folder(alice).pk])
    assert _uids(signed_in.get(url + "?q=rhubarb")) == [3]  # only in the text
    assert _uids(signed_in.get(url + "?q=apple")) == [2]  # only in the subject
    assert _uids(signed_in.get(url + "?q=RHUBARB&sender=mia")) == [3]
    assert _uids(signed_in.get(url + "?q=rhubarb&sender=zoe")) == []
    # Typed punctuation is searched for, never read as query syntax.
    for q in ("rhubarb:*", "'rhubarb' | short", "!(&", "\\"):
        assert signed_in.get(url, {"q": q}).status_code == 200


def test_old_mail_without_indexed_text_is_still_found_and_indexed(signed_in, alice) -> None:
    _three(alice)
    MessageText.objects.all().delete()  # as if stored before the index kept texts
    url = reverse("webmail:folder", args=[folder(alice).pk])
    assert _uids(signed_in.get(url + "?q=rhubarb")) == [3]
    # On Postgres what the search read is kept; elsewhere no text is kept at all.
    assert MessageText.objects.count() == (3 if fulltext.enabled() else 0)


def test_body_search_stops_at_its_limit_and_says_so(signed_in, alice, settings) -> None:
    settings.WEBMAIL_BODY_SEARCH_LIMIT = 2
    _three(alice)
    MessageText.objects.all().delete()  # the limit is for mail whose text is not indexed
    url = reverse("webmail:folder", args=[folder(alice).pk])
    response = signed_in.get(url + "?body=short")  # only in the oldest message
    assert _uids(response) == []
    assert b"Only the text of the newest 2 messages was searched." in response.content
    # Narrowing the dates reaches older mail.
    inbox = folder(alice)
    Message.objects.filter(folder=inbox, uid=1).update(
        internal_date=timezone.now() - timedelta(days=10))
    until = timezone.localdate() - timedelta(days=5)
    assert _uids(signed_in.get(url + f"?body=short&until={until}")) == [1]


def test_a_big_folder_is_listed_and_searched_with_a_few_limited_queries(alice,
                                                                       settings) -> None:
    inbox = folder(alice)
    template = Message.objects.get(folder=inbox, uid=deliver_to(alice, make_message()))
    now = timezone.now()
    Message.objects.bulk_create([
        Message(folder=inbox, uid=uid, blob_id=template.blob_id, size=100 + uid,
                internal_date=now - timedelta(minutes=5000 - uid), modseq=2,
                subject=f"Subject {uid}", from_addr=f"Sender {uid % 7} <s{uid % 7}@x.test>",
                to_addrs="alice@example.test", bodystructure=template.bodystructure)
        for uid in range(2, 5001)], batch_size=1000)
    settings.WEBMAIL_BODY_SEARCH_LIMIT = 50
    for query in [listing.Query(), listing.Query(sender="sender 3"),
                  listing.Query(text="Subject 4999")]:
        with CaptureQueriesContext(connection) as queries:
            page = listing.page(inbox, query, "date", True, number=3, size=50)
        assert len(queries) <= 3
        assert all("LIMIT" in q["sql"] for q in queries if "ORDER BY" in q["sql"])
        assert len(page.rows) <= 50
    body = listing.page(inbox, listing.Query(body="hi there"), "date", True, size=50)
    if fulltext.enabled():  # every message shares the blob that says "Hi there!"
        assert body.body_searched is None and body.total == 5000
    else:
        assert body.body_searched == 50 and not body.body_search_complete
        assert body.total == 50


def test_the_poll_reports_new_mail_flag_changes_and_unread_counts(signed_in, alice) -> None:
    first = deliver_to(alice, make_message(subject="first"))
    inbox = folder(alice)
    page = signed_in.get(reverse("webmail:folder", args=[inbox.pk]))
    modseq = re.search(rb'data-modseq="(\d+)"', page.content).group(1).decode()
    uidnext = re.search(rb'data-uidnext="(\d+)"', page.content).group(1).decode()
    store_messages.store_flags(inbox.pk, [first], "add", ["\\Flagged", "\\Seen"])
    deliver_to(alice, make_message(subject="Brand new mail"))
    data = signed_in.get(reverse("webmail:poll") + f"?folder={inbox.pk}&modseq={modseq}"
                         f"&uidnext={uidnext}").json()
    assert data["unread"] == {str(inbox.pk): 1}
    assert data["changed"] == [{"uid": first, "seen": True, "flagged": True,
                                "answered": False, "deleted": False}]
    assert data["new_count"] == 1 and "Brand new mail" in data["new_rows"]
    assert data["uidnext"] == int(uidnext) + 1 and not data["reload"]
    # Asked again from the new state: nothing more.
    again = signed_in.get(reverse("webmail:poll") + f"?folder={inbox.pk}&modseq="
                          f"{data['modseq']}&uidnext={data['uidnext']}").json()
    assert again["changed"] == [] and again["new_count"] == 0 and again["gone"] == []


def test_the_poll_reports_messages_that_went(signed_in, alice) -> None:
    uid = deliver_to(alice, make_message())
    inbox = folder(alice)
    inbox.refresh_from_db()
    state = (inbox.highestmodseq, inbox.uidnext)
    store_messages.store_flags(inbox.pk, [uid], "add", ["\\Deleted"])
    store_messages.expunge_deleted(inbox.pk)
    data = signed_in.get(reverse("webmail:poll") + f"?folder={inbox.pk}&modseq={state[0]}"
                         f"&uidnext={state[1]}").json()
    assert data["gone"] == [uid]


def test_only_the_unsorted_first_page_takes_new_rows_live(signed_in, alice) -> None:
    deliver_to(alice, make_message())
    url = reverse("webmail:folder", args=[folder(alice).pk])
    assert b'data-live="1"' in signed_in.get(url).content
    assert b'data-live="1"' not in signed_in.get(url + "?q=x").content
    assert b'data-live="1"' not in signed_in.get(url + "?sort=size").content


def test_parse_day_accepts_iso_dates_only() -> None:
    assert listing.parse_day("2025-06-02") == date(2025, 6, 2)
    assert listing.parse_day("June 2") is None and listing.parse_day("") is None


def test_on_postgres_a_word_search_uses_the_full_text_index(alice) -> None:
    if not fulltext.enabled():
        return  # SQLite keeps no text: it reads the blobs (tests above)
    deliver_to(alice, make_message(subject="x", text="the quarterly invoice\n"))
    blobs = fulltext.matching_blobs("Invoi")  # a prefix, any case
    assert list(MessageText.objects.filter(blob_id__in=blobs).values_list("text", flat=True)
                ) == ["the quarterly invoice"]
    sql, params = blobs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert fulltext.INDEX_NAME in plan, plan


def test_sorting_uses_base_subjects_and_display_names(signed_in, alice) -> None:
    deliver_to(alice, make_message(subject="Re: zebra", sender="bob@remote.test"))
    deliver_to(alice, make_message(subject="apple", sender="Carol <aaa@remote.test>"))
    deliver_to(alice, make_message(subject="[list] Fwd: Mango", sender="amy <zzz@remote.test>"))
    url = reverse("webmail:folder", args=[folder(alice).pk])
    # "Re:", "Fwd:" and list tags do not count, nor does case (RFC 5256 base subject).
    assert _uids(signed_in.get(url + "?sort=subject")) == [2, 3, 1]
    assert _uids(signed_in.get(url + "?sort=-subject")) == [1, 3, 2]
    # Senders by the name shown, or the address when there is none (RFC 5957).
    assert _uids(signed_in.get(url + "?sort=from")) == [3, 1, 2]


def test_sent_mail_sorts_by_recipient(signed_in, alice) -> None:
    for to in ("Zed <a@x.test>", "yvonne@x.test", "Adam <z@x.test>"):
        deliver_to(alice, make_message(subject=to, to=to), folder="Sent", flags=("\\Seen",))
    url = reverse("webmail:folder", args=[folder(alice, "Sent").pk])
    response = signed_in.get(url + "?sort=to")
    assert _uids(response) == [3, 2, 1]
    assert b"sort=-to" in response.content  # the column's link turns the order around


def test_a_big_folder_sorts_by_sender_subject_and_size_on_an_index(alice) -> None:
    inbox = folder(alice)
    template = Message.objects.get(folder=inbox, uid=deliver_to(alice, make_message()))
    now = timezone.now()
    Message.objects.bulk_create([
        Message(folder=inbox, uid=uid, blob_id=template.blob_id, size=100 + uid % 500,
                internal_date=now - timedelta(minutes=5000 - uid), modseq=2,
                subject=f"Subject {uid}", sort_subject=f"SUBJECT {uid:05d}",
                sort_display_from=f"SENDER {uid % 7}", bodystructure=template.bodystructure)
        for uid in range(2, 3001)], batch_size=1000)
    for sort, first in [("subject", 3000), ("from", 2995), ("size", 2999)]:
        with CaptureQueriesContext(connection) as queries:
            page = listing.page(inbox, listing.Query(), sort, True, number=1, size=50)
        assert len(queries) <= 3
        ordered = [q["sql"] for q in queries if "ORDER BY" in q["sql"]]
        assert ordered and all("LIMIT" in q for q in ordered)
        assert page.rows[0].uid == first
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN QUERY PLAN " + ordered[0].replace("%s", "?"))
                plan = " ".join(str(row) for row in cursor.fetchall())
            assert f"message_folder_{sort}" in plan and "TEMP B-TREE" not in plan


def _reply(subject: str, text: str, parents: str) -> bytes:
    return make_message(subject=subject, text=text, headers={"References": parents})


def test_a_message_shows_its_conversation(signed_in, alice, bob) -> None:
    inbox = folder(alice)

    def message_id(uid: int) -> str:
        return Message.objects.get(folder=inbox, uid=uid).message_id

    first = deliver_to(alice, make_message(subject="Plans"))
    deliver_to(alice, make_message(subject="Something else"))
    second = deliver_to(alice, _reply("Re: Plans", "one", message_id(first)))
    third = deliver_to(alice, _reply("Re: Plans", "two",
                                     f"{message_id(first)} {message_id(second)}"))
    deliver_to(bob, _reply("Re: Plans", "bob's", message_id(first)))
    page = signed_in.get(reverse("webmail:message", args=[inbox.pk, second])).content.decode()
    assert "Conversation" in page
    shown = [int(u) for u in re.findall(r'data-conversation-uid="(\d+)"', page)]
    assert shown == [first, third]  # the others, oldest first; this one is not a link
    assert [r.uid for r in listing.conversation(inbox, third)] == [first, second, third]
    lone = signed_in.get(reverse("webmail:message", args=[inbox.pk, 2])).content.decode()
    assert "wm-conversation" not in lone


def test_list_dates_read_as_the_date_filters_would() -> None:
    from django.template import Context, Template

    old = Template(
        "<time datetime=\"{{ d|date:'c' }}\" title=\"{{ d|date:'j M Y H:i' }}\">"
        "{% if d|date:'Y-m-d' == today|date:'Y-m-d' %}{{ d|time:'H:i' }}"
        "{% elif d|date:'Y' == today|date:'Y' %}{{ d|date:'j M' }}"
        "{% else %}{{ d|date:'j M Y' }}{% endif %}</time>")
    new = Template("{% load webmail_list %}{% listed_date d today %}")
    now = timezone.now().replace(hour=9, minute=5)
    today = timezone.localdate(now)
    for moment in (now, now - timedelta(days=40), now.replace(year=now.year - 3),
                   now.replace(month=1, day=1, hour=0, minute=0)):
        context = {"d": moment, "today": today}
        assert new.render(Context(context)) == old.render(Context(context)), moment


def test_pages_count_unread_mail_only_the_folders_page_counts_all(signed_in, alice) -> None:
    _three(alice)
    Message.objects.filter(uid=1).update(seen=True)
    inbox = folder(alice)
    with CaptureQueriesContext(connection) as queries:
        page = signed_in.get(reverse("webmail:folder", args=[inbox.pk])).content.decode()
    assert f'data-unread-for="{inbox.pk}">2<' in page
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"] and "GROUP BY" in q["sql"]]
    assert counts and all('"seen"' in sql for sql in counts)  # no count of all mail
    managed = signed_in.get(reverse("webmail:folders")).content.decode()
    assert '<td data-label="Messages">3</td>' in managed
    assert '<td data-label="Unread">2</td>' in managed


def test_unread_counts_are_read_from_their_index(alice) -> None:
    from mailcore.webclient import folder_list

    if connection.vendor != "sqlite":
        return  # Postgres picks its plan by its statistics
    assert "message_folder_unread" in folder_list.unread_query(alice.pk).explain()
    assert folder_list.unread_counts(alice.pk) == {}
