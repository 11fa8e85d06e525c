"""Template tags for the webmail's message list, where each runs 50 times a page."""

from __future__ import annotations

from datetime import date, datetime

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def listed_date(moment: datetime, today: date) -> str:
    """Return a row's <time>: the hour today, day and month this year, else with the year.

    One tag instead of seven date filters a row (each looks up its format and localises
    the value again): the list page's rendering took longer than its queries.
    """
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    if local.date() == today:
        shown = dateformat.time_format(local, "H:i")
    elif local.year == today.year:
        shown = dateformat.format(local, "j M")
    else:
        shown = dateformat.format(local, "j M Y")
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(),
                       dateformat.format(local, "j M Y H:i"), shown)
