"""The development outbox's pages (staff only): the system mail kept instead of sent.

What the outbox holds and why is mailcore.sending.devoutbox's business; these pages list
it, show one message rendered (mailcore.webclient.reading: sanitised HTML in a sandboxed
frame, the plain text with its links clickable, the headers and the source), and empty it.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from mailcore.sending import devoutbox
from mailcore.webclient import reading
from panel.accounts.decorators import staff_required


class KeyConverter:
    """A path part naming an outbox message: its key and nothing else."""

    regex = devoutbox.KEY.pattern

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


def _get_kept(key: str) -> devoutbox.Kept:
    kept = devoutbox.get(key)
    if kept is None:
        raise Http404("No such message")
    return kept


@staff_required
@require_GET
def outbox(request: HttpRequest) -> HttpResponse:
    return render(request, "panel/outbox.html", {
        "kept": devoutbox.listing(), "enabled": devoutbox.enabled()})


@staff_required
@require_GET
def outbox_message(request: HttpRequest, key: str) -> HttpResponse:
    kept = _get_kept(key)
    return render(request, "panel/outbox_message.html", {
        "kept": kept, "message": reading.render(kept.raw),
        "source": kept.raw.decode("utf-8", "replace")})


@staff_required
@require_POST
def outbox_clear(request: HttpRequest) -> HttpResponse:
    removed = devoutbox.clear()
    messages.success(request, f"The outbox is empty ({removed} removed).")
    return redirect("outbox")
