"""The operator's pages (staff only): the dashboard and customers' limits."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from mailcore import selfservice, stats
from mailcore.models import Domain
from panel.accounts.decorators import staff_required
from panel.dashboard import charts
from panel.dashboard.forms import LimitsForm

_VERDICT_LABELS = {"inbox": "Inbox", "junk": "Junk", "rejected": "Refused (550)",
                   "deferred": "Deferred (451)", "unscanned": "Not scanned for spam"}


def _get_customer(pk: int):
    return get_object_or_404(get_user_model(), pk=pk)


@staff_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    hourly, daily = stats.hourly(48), stats.daily(30)
    return render(request, "panel/dashboard.html", {
        "totals": stats.totals(),
        "hourly_chart": charts.line_chart(hourly, "Messages per hour, last 48 hours"),
        "hourly_legend": charts.legend(hourly),
        "daily_chart": charts.bar_chart(daily, "Messages per day, last 30 days"),
        "daily_legend": charts.legend(daily),
        "daily": daily,
        "daily_rows": [(label, [daily.counts[k][i] for k in stats.KINDS])
                       for i, label in enumerate(daily.labels)],
        "kinds": [stats.LABELS[k] for k in stats.KINDS],
        "verdicts": [(_VERDICT_LABELS[kind], n) for kind, n in stats.verdicts(7).items()],
        "spam_scoring": bool(settings.RSPAMD_URL),
        "queue": stats.queue_state(),
        "oldest_queued": stats.oldest_queued(),
        "storage": stats.storage_by_domain(),
        "failures": stats.recent_failures(),
        "senders": stats.busiest_senders(),
        "unverified": Domain.objects.filter(verified_at__isnull=True, is_active=True)
                      .select_related("owner").order_by("created_at")[:20],
    })


@staff_required
@require_GET
def customer_list(request: HttpRequest) -> HttpResponse:
    users = (get_user_model().objects.order_by("email", "username")
             .annotate(domain_count=Count("domains", distinct=True),
                       mailbox_count=Count("domains__mailboxes", distinct=True),
                       storage=Sum("domains__mailboxes__used_bytes")))
    rows = [(user, selfservice.limits_for(user)) for user in users]
    return render(request, "panel/customer_list.html", {"rows": rows})


@staff_required
@require_http_methods(["GET", "POST"])
def customer_limits(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _get_customer(pk)
    form = LimitsForm(request.POST or None, user=customer)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Limits of {customer.email or customer} are saved.")
        return redirect("customer_list")
    return render(request, "panel/customer_limits.html", {
        "customer": customer, "form": form, "usage": selfservice.usage_for(customer)})
