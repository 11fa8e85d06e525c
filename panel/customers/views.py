"""Customer self-service pages: domains, their DNS, mailboxes, aliases and client setup.

Every object is fetched through one ownership helper (_get_domain_for_user and friends),
so a customer reaches only their own; staff reach everyone's.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailcore import clientconfig, directory, dnscheck, selfservice
from mailcore.claims import ClaimRefused
from mailcore.inbound import refusals
from mailcore.models import Alias, AppPassword, Domain, Mailbox
from panel.accounts.decorators import staff_required
from panel.customers import forms
from panel.inputs import local_url

# Ownership ------------------------------------------------------------------------------------


def _domains(request: HttpRequest) -> QuerySet[Domain]:
    domains = Domain.objects.visible_to(request.user)
    # A customer's deactivated domain is on its way out (or suspended): hands off.
    return domains if request.user.is_staff else domains.filter(is_active=True)


def _get_domain_for_user(request: HttpRequest, pk: int) -> Domain:
    return get_object_or_404(_domains(request), pk=pk)


def _get_mailbox_for_user(request: HttpRequest, pk: int) -> Mailbox:
    return get_object_or_404(
        Mailbox.objects.select_related("domain").filter(domain__in=_domains(request)), pk=pk)


def _get_alias_for_user(request: HttpRequest, pk: int) -> Alias:
    return get_object_or_404(
        Alias.objects.select_related("domain").filter(domain__in=_domains(request)), pk=pk)


def _get_app_password_for_user(request: HttpRequest, mailbox: Mailbox, pk: int) -> AppPassword:
    return get_object_or_404(AppPassword.objects.for_mailbox(mailbox), pk=pk)


# Home -----------------------------------------------------------------------------------------

def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "panel/landing.html")
    domains = (Domain.objects.filter(owner=request.user)
               .annotate(mailbox_count=Count("mailboxes", distinct=True),
                         storage=Sum("mailboxes__used_bytes")))
    return render(request, "panel/home.html", {
        "domains": domains,
        "limits": selfservice.limits_for(request.user),
        "usage": selfservice.usage_for(request.user),
    })


# Domains --------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def domain_add(request: HttpRequest) -> HttpResponse:
    form = forms.DomainForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid() and (domain := form.save()):
        if domain.verified_at:
            messages.success(request, f"{domain.name} is added and receives mail.")
        else:
            messages.success(request, f"{domain.name} is added. Publish the DNS records "
                                      "below, then check them to start receiving mail.")
        return redirect("domain_dns", domain.pk)
    return render(request, "panel/domain_add.html", {"form": form})


@login_required
@require_GET
def domain_detail(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    mailboxes = list(Mailbox.objects.for_domain(domain).select_related("domain"))
    for mailbox in mailboxes:
        mailbox.percent = selfservice.quota_percent(mailbox)
    return render(request, "panel/domain_detail.html", {
        "domain": domain,
        "mailboxes": mailboxes,
        "forwards": selfservice.forwards_of(domain),
        "aliases": Alias.objects.for_domain(domain).exclude(local_part="")
                   .exclude(local_part__in=[m.local_part for m in mailboxes]),
        "catch_all": selfservice.get_catch_all(domain),
    })


@login_required
@require_http_methods(["GET", "POST"])
def domain_dns(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    checked = request.method == "POST"
    if checked:
        was_verified = domain.verified_at is not None
        try:
            report = selfservice.check_dns(domain)
        except ClaimRefused as exc:
            messages.error(request, str(exc))
            return redirect("domain_dns", domain.pk)
        if domain.verified_at and not was_verified:
            messages.success(request, f"Ownership of {domain.name} is proven: "
                                      "it now receives mail.")
        elif report.all_required_right:
            messages.success(request, "The required records are in place.")
        else:
            messages.warning(request, "Some records are missing or wrong; see below. "
                                      "DNS changes can take a while to be seen.")
    else:
        report = dnscheck.unchecked(domain)
    return render(request, "panel/domain_dns.html", {
        "domain": domain, "report": report, "checked": checked,
        "zone": "\n".join(r.record.zone_line() for r in report.results),
    })


@staff_required
@require_POST
def domain_verify(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    try:
        verified = selfservice.verify_domain(domain)
    except ClaimRefused:
        # Staff may see why: the name is verified for another account already.
        messages.error(request, f"Another {domain.name} is verified already; remove it "
                                "before verifying this claim.")
    else:
        if verified:
            messages.success(request, f"{domain.name} is verified by hand and receives mail.")
        else:
            messages.info(request, f"{domain.name} was already verified.")
    if next_url := local_url(request, request.POST.get("next")):
        return redirect(next_url)
    return redirect("domain_detail", domain.pk)


@login_required
@require_http_methods(["GET", "POST"])
def domain_remove(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    form = forms.ConfirmNameForm(request.POST or None, expected=domain.name)
    if request.method == "POST" and form.is_valid():
        selfservice.request_removal(domain)
        messages.success(request, f"{domain.name} is deactivated; its mailboxes and mail "
                                  "are being deleted.")
        return redirect("home")
    return render(request, "panel/domain_remove.html", {
        "domain": domain, "form": form, "summary": selfservice.removal_summary(domain)})


@login_required
@require_http_methods(["GET", "POST"])
def catch_all(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    form = forms.CatchAllForm(request.POST or None, domain=domain)
    if request.method == "POST" and form.is_valid() and form.save():
        if form.cleaned_data["destinations"]:
            messages.success(request, f"Mail for unknown names at {domain.name} now goes to "
                                      + ", ".join(form.cleaned_data["destinations"]) + ".")
        else:
            messages.success(request, f"Mail for unknown names at {domain.name} is refused.")
        return redirect("domain_detail", domain.pk)
    return render(request, "panel/catch_all.html", {"domain": domain, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def sender_checks(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    form = forms.SenderChecksForm(request.POST or None, domain=domain)
    if request.method == "POST" and form.is_valid() and form.save():
        if domain.dmarc_reject == Domain.DmarcReject.QUARANTINE:
            messages.success(request, "Mail that its sender's DMARC policy rejects now goes "
                                      "to the recipient's Junk folder.")
        else:
            messages.success(request, "Mail that its sender's DMARC policy rejects is now "
                                      "refused.")
        return redirect("domain_detail", domain.pk)
    return render(request, "panel/sender_checks.html", {"domain": domain, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def spam_filter(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    form = forms.SpamFilterForm(request.POST or None, domain=domain)
    if request.method == "POST" and form.is_valid() and form.save():
        messages.success(request, f"Spam filter settings of {domain.name} saved.")
        return redirect("domain_detail", domain.pk)
    return render(request, "panel/spam_filter.html", {
        "domain": domain, "form": form, "scanning": bool(settings.RSPAMD_URL)})


@login_required
@require_GET
def refused_mail(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    return render(request, "panel/refused_mail.html", {
        "domain": domain, "refusals": refusals.recent(domain),
        "days": settings.INBOUND_REFUSALS_DAYS})


# Mailboxes ------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def mailbox_add(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    form = forms.MailboxCreateForm(request.POST or None, user=domain.owner or request.user,
                                   domain=domain)
    if request.method == "POST" and form.is_valid() and (mailbox := form.save()):
        messages.success(request, f"Mailbox {mailbox.address} is created.")
        return redirect("mailbox_detail", mailbox.pk)
    return render(request, "panel/mailbox_add.html", {"domain": domain, "form": form})


@login_required
@require_GET
def mailbox_detail(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    return render(request, "panel/mailbox_detail.html", {
        "mailbox": mailbox,
        "percent": selfservice.quota_percent(mailbox),
        "forward": selfservice.get_forward(mailbox),
        "pop3_form": forms.Pop3PolicyForm(mailbox=mailbox),
        "app_passwords": AppPassword.objects.for_mailbox(mailbox),
        "app_password_form": forms.AppPasswordForm(mailbox=mailbox),
    })


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_edit(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    form = forms.MailboxEditForm(request.POST or None, user=mailbox.domain.owner or request.user,
                                 mailbox=mailbox)
    if request.method == "POST" and form.is_valid() and form.save():
        messages.success(request, f"{mailbox.address} is updated.")
        return redirect("mailbox_detail", mailbox.pk)
    return render(request, "panel/mailbox_form.html", {
        "mailbox": mailbox, "form": form, "title": "Edit mailbox", "submit": "Save"})


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_password(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    form = forms.MailboxPasswordForm(request.POST or None, mailbox=mailbox)
    if request.method == "POST" and form.is_valid() and form.save():
        messages.success(request, f"The password of {mailbox.address} is changed.")
        return redirect("mailbox_detail", mailbox.pk)
    return render(request, "panel/mailbox_form.html", {
        "mailbox": mailbox, "form": form, "title": "Change password",
        "submit": "Change password"})


@login_required
@require_POST
def mailbox_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    selfservice.set_active(mailbox, not mailbox.is_active)
    if mailbox.is_active:
        messages.success(request, f"{mailbox.address} is enabled.")
    else:
        messages.success(request, f"{mailbox.address} is disabled: it neither receives "
                                  "mail nor logs in.")
    return redirect("mailbox_detail", mailbox.pk)


@login_required
@require_POST
def mailbox_pop3(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    form = forms.Pop3PolicyForm(request.POST, mailbox=mailbox)
    if form.is_valid() and form.save():
        messages.success(request, "The POP3 setting is saved.")
    else:
        messages.error(request, "Choose what a POP3 delete does.")
    return redirect("mailbox_detail", mailbox.pk)


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_forward(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    form = forms.ForwardForm(request.POST or None, mailbox=mailbox)
    if request.method == "POST" and form.is_valid() and form.save():
        if form.cleaned_data["destinations"]:
            messages.success(request, f"Mail to {mailbox.address} is forwarded.")
        else:
            messages.success(request, f"Mail to {mailbox.address} is no longer forwarded.")
        return redirect("mailbox_detail", mailbox.pk)
    return render(request, "panel/mailbox_form.html", {
        "mailbox": mailbox, "form": form, "title": "Forwarding", "submit": "Save"})


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_delete(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    if request.method == "POST":
        selfservice.remove_mailbox(mailbox)
        messages.success(request, f"{mailbox.address} and its mail are deleted.")
        return redirect("domain_detail", mailbox.domain_id)
    return render(request, "panel/mailbox_delete.html", {
        "mailbox": mailbox, "message_count": selfservice.message_count(mailbox)})


@login_required
@require_POST
@never_cache
def app_password_add(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    form = forms.AppPasswordForm(request.POST, mailbox=mailbox)
    if form.is_valid() and (created := form.save()):
        app, secret = created
        messages.success(request, f"App password “{app.name}” is created.")
        # Shown once, in this response; only its hash is kept.
        return render(request, "panel/app_password_created.html", {
            "mailbox": mailbox, "app": app, "secret": secret})
    for error in form.errors.get("name", []) + form.non_field_errors():
        messages.error(request, error)
    return redirect("mailbox_detail", mailbox.pk)


@login_required
@require_POST
def app_password_revoke(request: HttpRequest, pk: int, app_pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    app = _get_app_password_for_user(request, mailbox, app_pk)
    app.delete()
    messages.success(request, f"App password “{app.name}” is revoked.")
    return redirect("mailbox_detail", mailbox.pk)


@login_required
@require_GET
def mailbox_setup(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    autoconfig = reverse("autoconfig_mail") + "?" + urlencode({"emailaddress": mailbox.address})
    return render(request, "panel/mailbox_setup.html", {
        "mailbox": mailbox,
        "servers": clientconfig.servers(),
        "self_signed": clientconfig.self_signed(),
        "autoconfig_url": autoconfig,
        "mobileconfig_ok": bool(clientconfig.preferred("imap") and
                                clientconfig.preferred("smtp")),
    })


@login_required
@require_GET
def mailbox_mobileconfig(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _get_mailbox_for_user(request, pk)
    try:
        profile = clientconfig.mobileconfig(mailbox)
    except ValueError as exc:
        raise Http404(str(exc)) from exc
    response = HttpResponse(profile, content_type="application/x-apple-aspen-config")
    filename = f"{mailbox.address}.mobileconfig".replace('"', "")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# Aliases --------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def alias_add(request: HttpRequest, pk: int) -> HttpResponse:
    domain = _get_domain_for_user(request, pk)
    form = forms.AliasForm(request.POST or None, domain=domain)
    if request.method == "POST" and form.is_valid() and (alias := form.save()):
        messages.success(request, f"Alias {alias.address} is created.")
        return redirect("domain_detail", domain.pk)
    return render(request, "panel/alias_form.html", {
        "domain": domain, "form": form, "title": "New alias", "submit": "Create alias"})


@login_required
@require_http_methods(["GET", "POST"])
def alias_edit(request: HttpRequest, pk: int) -> HttpResponse:
    alias = _get_alias_for_user(request, pk)
    form = forms.AliasForm(request.POST or None, domain=alias.domain, alias=alias)
    if request.method == "POST" and form.is_valid() and form.save():
        messages.success(request, f"Alias {alias.address} is updated.")
        return redirect("domain_detail", alias.domain_id)
    return render(request, "panel/alias_form.html", {
        "domain": alias.domain, "alias": alias, "form": form,
        "title": f"Alias {alias.address}", "submit": "Save"})


@login_required
@require_POST
def alias_delete(request: HttpRequest, pk: int) -> HttpResponse:
    alias = _get_alias_for_user(request, pk)
    directory.remove_alias(alias)
    messages.success(request, f"Alias {alias.address} is deleted.")
    return redirect("domain_detail", alias.domain_id)
