"""The operator's Django admin for domains, mailboxes, aliases and the outbound queue.

It acts through the services (directory, queue operations), never on the rows behind them.
"""

from __future__ import annotations

import email.policy
import re
from email.parser import BytesParser
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from mailcore import claims, directory
from mailcore.addresses import (
    AddressError,
    normalize_address,
    normalize_domain,
    normalize_local_part,
)
from mailcore.directory import DirectoryError
from mailcore.models import Alias, Domain, Mailbox, OutboundMessage, OutboundRecipient
from mailcore.queue import operations
from mailcore.store.blobs import blob_store


def _validation_error(exc: Exception) -> forms.ValidationError:
    return forms.ValidationError(str(exc))


# Domains ----------------------------------------------------------------------------------

class DomainForm(forms.ModelForm):
    class Meta:
        model = Domain
        fields = ["name", "owner", "is_active", "verified_at"]

    def clean_name(self) -> str:
        try:
            return normalize_domain(self.cleaned_data["name"])
        except AddressError as exc:
            raise _validation_error(exc) from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # One verified row per name. The model's constraint cannot be checked by the form
        # (name or verified_at is not among its fields), so say it here, not by a crash.
        # An operator's new domain is verified as it is added (directory.add_domain).
        name = cleaned.get("name") or self.instance.name
        verifying = self.instance._state.adding or cleaned.get("verified_at")
        if name and verifying and (Domain.objects.verified().filter(name=name)
                                   .exclude(pk=self.instance.pk).exists()):
            raise forms.ValidationError(f"A verified domain {name} exists already.")
        return cleaned


class VerifiedFilter(admin.SimpleListFilter):
    title = "verified"
    parameter_name = "verified"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(verified_at__isnull=self.value() == "no")
        return queryset


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    form = DomainForm
    list_display = ["name", "owner", "is_active", "is_verified", "mailbox_count", "alias_count",
                    "created_at"]
    list_filter = ["is_active", VerifiedFilter]
    search_fields = ["name", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    actions = ["mark_verified"]

    def get_urls(self) -> list[URLPattern]:
        verify = path("<int:pk>/verify/", self.admin_site.admin_view(self.verify_view),
                      name="mailcore_domain_verify")
        return [verify, *super().get_urls()]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Domain]:
        return super().get_queryset(request).annotate(
            mailbox_total=Count("mailboxes", distinct=True),
            alias_total=Count("aliases", distinct=True),
        )

    def get_fields(self, request: HttpRequest, obj: Domain | None = None) -> list[str]:
        if obj is None:
            # An operator's domain is verified as it is added (directory.add_domain).
            return ["name", "owner", "is_active"]
        return ["name", "owner", "is_active", "verified_at", "verification_token", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Domain | None = None) -> list[str]:
        return [] if obj is None else ["name", "verification_token", "created_at"]

    @admin.display(boolean=True, description="verified", ordering="verified_at")
    def is_verified(self, domain: Domain) -> bool:
        return domain.verified_at is not None

    @admin.display(description="mailboxes", ordering="mailbox_total")
    def mailbox_count(self, domain: Domain) -> int:
        return domain.mailbox_total

    @admin.display(description="aliases", ordering="alias_total")
    def alias_count(self, domain: Domain) -> int:
        return domain.alias_total

    def save_model(self, request: HttpRequest, obj: Domain, form: forms.ModelForm,
                   change: bool) -> None:
        if change:
            proven = "verified_at" in form.changed_data and obj.verified_at is not None
            super().save_model(request, obj, form, change)
            if proven and not form.initial.get("verified_at"):
                # Verified by hand: the other claims on the name end, as for a DNS proof.
                claims.end_pending(obj.name, claims.PROVEN_ELSEWHERE, keep=obj)
            return
        created = directory.add_domain(obj.name, owner=obj.owner)
        obj.pk = created.pk
        obj.verification_token = created.verification_token
        obj.verified_at = created.verified_at
        obj.created_at = created.created_at
        obj._state.adding = False
        if not obj.is_active:
            obj.save(update_fields=["is_active"])

    @admin.action(description="Mark as verified", permissions=["change"])
    def mark_verified(self, request: HttpRequest, queryset: QuerySet[Domain]) -> None:
        # The rules of a DNS proof (claims.prove): the other claims on the name end, their
        # owners are told, and a name verified for another account is refused.
        for domain in queryset:
            self._verify(request, domain)

    def verify_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Mark one domain verified: the change page's button (POST only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        domain = get_object_or_404(Domain, pk=pk)
        if not self.has_change_permission(request, domain):
            raise PermissionDenied
        self._verify(request, domain)
        return redirect("admin:mailcore_domain_change", domain.pk)

    def _verify(self, request: HttpRequest, domain: Domain) -> None:
        try:
            verified = claims.prove(domain)
        except claims.ClaimRefused:
            self.message_user(request, f"{domain.name} (claim {domain.pk}) was not verified: "
                              "the name is verified for another account, or the claim "
                              "has ended.", messages.ERROR)
            return
        if verified:
            self.message_user(request, f"{domain.name} is verified and receives mail; other "
                              "claims on the name have ended.", messages.SUCCESS)
        else:
            self.message_user(request, f"{domain.name} was verified already.", messages.INFO)

    def delete_model(self, request: HttpRequest, obj: Domain) -> None:
        directory.remove_domain(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Domain]) -> None:
        for domain in queryset:
            directory.remove_domain(domain)


# Mailboxes --------------------------------------------------------------------------------

class MailboxForm(forms.ModelForm):
    password = forms.CharField(
        label="Set password", required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The mailbox's login password for POP3, IMAP and SMTP. "
        "Leave blank to keep the current one.",
    )

    class Meta:
        model = Mailbox
        fields = ["domain", "local_part", "display_name", "password", "quota_bytes", "is_active",
                  "pop3_policy"]
        labels = {"quota_bytes": "Quota (bytes)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance._state.adding:
            self.fields["password"].required = True
            self.fields["password"].help_text = "The mailbox's login password."

    def clean_local_part(self) -> str:
        try:
            return normalize_local_part(self.cleaned_data["local_part"])
        except AddressError as exc:
            raise _validation_error(exc) from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        domain, local_part = cleaned.get("domain"), cleaned.get("local_part")
        if self.instance._state.adding and domain is not None and local_part:
            try:
                directory.check_new_mailbox_address(f"{local_part}@{domain.name}", domain)
            except DirectoryError as exc:
                raise _validation_error(exc) from exc
        return cleaned


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    form = MailboxForm
    list_display = ["address", "display_name", "is_active", "used", "quota", "pop3_policy",
                    "message_count", "created_at"]
    list_filter = ["is_active", "pop3_policy", "domain__is_active", "domain"]
    search_fields = ["local_part", "domain__name", "display_name"]
    list_select_related = ["domain"]
    autocomplete_fields = ["domain"]
    ordering = ["domain__name", "local_part"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Mailbox]:
        return super().get_queryset(request).annotate(message_total=Count("folders__messages"))

    def get_fields(self, request: HttpRequest, obj: Mailbox | None = None) -> list[str]:
        fields = ["domain", "local_part", "display_name", "password", "quota_bytes",
                  "is_active", "pop3_policy"]
        if obj is not None:
            fields += ["used_bytes", "folder_summary", "created_at"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Mailbox | None = None) -> list[str]:
        # The address is the login; change it by adding a new mailbox, not by renaming.
        if obj is None:
            return []
        return ["domain", "local_part", "used_bytes", "folder_summary", "created_at"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        return {"quota_bytes": settings.DEFAULT_QUOTA, **initial}

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Mailbox],
                           search_term: str) -> tuple[QuerySet[Mailbox], bool]:
        # A full address matches its mailbox, which searching each field alone cannot do.
        local, at, domain = search_term.strip().rpartition("@")
        if at and local and " " not in search_term.strip():
            return queryset.filter(local_part__iexact=local, domain__name__iexact=domain), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="address", ordering="local_part")
    def address(self, mailbox: Mailbox) -> str:
        return mailbox.address

    @admin.display(description="used", ordering="used_bytes")
    def used(self, mailbox: Mailbox) -> str:
        return filesizeformat(mailbox.used_bytes)

    @admin.display(description="quota", ordering="quota_bytes")
    def quota(self, mailbox: Mailbox) -> str:
        return filesizeformat(mailbox.quota_bytes) if mailbox.quota_bytes else "unlimited"

    @admin.display(description="messages", ordering="message_total")
    def message_count(self, mailbox: Mailbox) -> int:
        return mailbox.message_total

    @admin.display(description="folders")
    def folder_summary(self, mailbox: Mailbox) -> str:
        folders = mailbox.folders.annotate(total=Count("messages")).order_by("name")
        return format_html_join(
            "", "<div>{} &mdash; {} messages, UIDVALIDITY {}, UIDNEXT {}</div>",
            ((f.name, f.total, f.uidvalidity, f.uidnext) for f in folders),
        ) or "-"

    def save_model(self, request: HttpRequest, obj: Mailbox, form: forms.ModelForm,
                   change: bool) -> None:
        password = form.cleaned_data.get("password")
        if change:
            super().save_model(request, obj, form, change)
            if password:
                directory.set_password(obj, password)
            return
        created = directory.add_mailbox(obj.address, password, display_name=obj.display_name,
                                        quota_bytes=obj.quota_bytes, domain=obj.domain)
        obj.pk = created.pk
        obj.password_hash = created.password_hash
        obj.created_at = created.created_at
        obj._state.adding = False
        obj.save(update_fields=["is_active", "pop3_policy"])

    def delete_model(self, request: HttpRequest, obj: Mailbox) -> None:
        directory.remove_mailbox(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Mailbox]) -> None:
        for mailbox in queryset:
            directory.remove_mailbox(mailbox)


# Aliases ----------------------------------------------------------------------------------

class AliasForm(forms.ModelForm):
    destination_list = forms.CharField(
        label="Destinations", widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One address per line (or comma-separated): local mailboxes, other "
        "aliases or remote addresses.",
    )

    class Meta:
        model = Alias
        fields = ["domain", "local_part", "destination_list", "is_active"]
        help_texts = {"local_part": "Leave empty for the domain's catch-all."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.initial["destination_list"] = "\n".join(self.instance.destinations)

    def clean_local_part(self) -> str:
        local_part = self.cleaned_data["local_part"].strip()
        if not local_part:
            return ""
        try:
            return normalize_local_part(local_part)
        except AddressError as exc:
            raise _validation_error(exc) from exc

    def clean_destination_list(self) -> list[str]:
        try:
            return [normalize_address(d) for d in re.split(r"[\s,;]+",
                                                           self.cleaned_data["destination_list"])
                    if d]
        except AddressError as exc:
            raise _validation_error(exc) from exc


class AliasKindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("alias", "Alias"), ("catch-all", "Catch-all")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "catch-all":
            return queryset.filter(local_part="")
        if self.value() == "alias":
            return queryset.filter(~Q(local_part=""))
        return queryset


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    form = AliasForm
    list_display = ["display_address", "destination_summary", "is_active", "is_catch_all",
                    "created_at"]
    list_filter = ["is_active", AliasKindFilter, "domain"]
    search_fields = ["local_part", "domain__name", "destinations"]
    list_select_related = ["domain"]
    autocomplete_fields = ["domain"]
    ordering = ["domain__name", "local_part"]

    def get_readonly_fields(self, request: HttpRequest, obj: Alias | None = None) -> list[str]:
        return [] if obj is None else ["domain", "local_part"]

    @admin.display(description="address", ordering="local_part")
    def display_address(self, alias: Alias) -> str:
        return f"@{alias.domain.name}" if alias.is_catch_all else alias.address

    @admin.display(description="destinations")
    def destination_summary(self, alias: Alias) -> str:
        return ", ".join(alias.destinations)

    @admin.display(boolean=True, description="catch-all")
    def is_catch_all(self, alias: Alias) -> bool:
        return alias.is_catch_all

    def save_model(self, request: HttpRequest, obj: Alias, form: forms.ModelForm,
                   change: bool) -> None:
        destinations = form.cleaned_data["destination_list"]
        if change:
            super().save_model(request, obj, form, change)
            directory.set_alias_destinations(obj, destinations)
            return
        address = f"{obj.local_part}@{obj.domain.name}"
        created = directory.add_alias(address, destinations, domain=obj.domain)
        obj.pk = created.pk
        obj.destinations = created.destinations
        obj.created_at = created.created_at
        obj._state.adding = False
        if not obj.is_active:
            obj.save(update_fields=["is_active"])

    def delete_model(self, request: HttpRequest, obj: Alias) -> None:
        directory.remove_alias(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Alias]) -> None:
        for alias in queryset:
            directory.remove_alias(alias)


# Outbound queue ---------------------------------------------------------------------------

RECIPIENT_LINES = 5  # recipients shown per message in the queue list; the rest are counted
HEADER_PREVIEW = 8192
TEXT_PREVIEW = 100_000  # characters of a queued message's text shown on its page
ADDRESS_CHARS, RESPONSE_CHARS = 22, 40  # cut longer values in the list (whole in the tooltip)


class OutboundRecipientInline(admin.TabularInline):
    model = OutboundRecipient
    fields = ["address", "state", "attempts", "next_attempt_at", "leased_until", "status",
              "last_response", "remote_mta", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class QueueStateFilter(admin.SimpleListFilter):
    """Messages with at least one recipient in the state (deferred: queued, tried before)."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [*OutboundRecipient.State.choices, ("deferred", "Deferred (tried, waiting)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        recipients = OutboundRecipient.objects.filter(message=OuterRef("pk"))
        if self.value() == "deferred":
            recipients = recipients.pending().filter(attempts__gt=0)
        elif self.value() in OutboundRecipient.State.values:
            recipients = recipients.filter(state=self.value())
        else:
            return queryset
        return queryset.filter(Exists(recipients))


def _cut(text: str, limit: int, title: str = "") -> str:
    """Return text cut to limit characters, the whole of it (or title) in a tooltip."""
    if len(text) <= limit and not title:
        return text
    return format_html('<span title="{}">{}</span>', title or text, Truncator(text).chars(limit))


def _when(moment) -> str:
    """Return a short local date and time ("2 Dec 14:05"), narrower than Django's default."""
    moment = timezone.localtime(moment)
    return f"{moment.day} {moment:%b %H:%M}"


def _raw(message: OutboundMessage) -> bytes | None:
    try:
        return blob_store().get(message.blob_id)
    except OSError:
        return None


def readable_text(raw: bytes) -> str:
    """Return a message's text parts decoded, other parts named, for the operator to read."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    out = []
    for part in parsed.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        name = part.get_filename()
        if part.get_content_maintype() == "text" and name is None:
            try:
                out.append(f"[{kind}]\n{part.get_content()}")
            except (LookupError, ValueError, AssertionError):
                out.append(f"[{kind}: cannot be decoded]")
        else:
            size = len(part.get_payload(decode=True) or b"")
            out.append(f"[{kind}{f' {name}' if name else ''}, {filesizeformat(size)}]")
    text = "\n\n".join(out)
    return text if len(text) <= TEXT_PREVIEW else text[:TEXT_PREVIEW] + "\n[...]"


def _lines(values: list[object], more: int) -> str:
    """Return one line per recipient, so a message's columns line up recipient by recipient."""
    html = format_html_join("", "<div>{}</div>", ((v,) for v in values))
    if more:
        html += format_html("<div>&hellip; and {} more</div>", more)
    return html or "-"


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    # Few, narrow columns, so that state, attempts, next attempt and last response fit
    # at 1,280 px beside the filter; long values are cut short, whole in their tooltip,
    # and the remote MTA is on the message's page.
    list_display = ["created", "envelope_sender", "recipient_addresses", "recipient_states",
                    "recipient_attempts", "next_attempt", "recipient_responses"]
    list_display_links = ["created"]
    list_filter = [QueueStateFilter, "system"]
    search_fields = ["mail_from", "recipients__address"]
    search_help_text = "Search by sender or recipient address."
    inlines = [OutboundRecipientInline]
    actions = ["retry_now", "bounce_now"]
    ordering = ["-created_at", "-pk"]
    fields = ["mail_from", "sender", "system", "created_at", "expires_at", "envelope_id",
              "dsn_return", "headers", "text"]
    readonly_fields = fields

    class Media:
        css = {"all": ["panel/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboundMessage]:
        queued = OutboundRecipient.objects.pending().filter(message=OuterRef("pk"))
        return super().get_queryset(request).select_related("sender__domain").prefetch_related(
            Prefetch("recipients", queryset=OutboundRecipient.objects.order_by("pk")),
        ).annotate(
            next_attempt_at=Subquery(queued.order_by("next_attempt_at")
                                     .values("next_attempt_at")[:1]),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Mail enters the queue by being sent, not by being typed into a form.
        return False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Every field is read-only: the page is for reading; the actions change things.
        extra_context = {**(extra_context or {}), "show_save": False,
                         "show_save_and_continue": False}
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request: HttpRequest,
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The app list beside the table would push the last columns off a 1,280 px screen;
        # the breadcrumbs still lead back.
        extra_context = {**(extra_context or {}), "is_nav_sidebar_enabled": False}
        return super().changelist_view(request, extra_context)

    @staticmethod
    def _shown(message: OutboundMessage) -> tuple[list[OutboundRecipient], int]:
        recipients = list(message.recipients.all())
        return recipients[:RECIPIENT_LINES], max(len(recipients) - RECIPIENT_LINES, 0)

    @admin.display(description="queued", ordering="created_at")
    def created(self, message: OutboundMessage) -> str:
        return _when(message.created_at)

    @admin.display(description="sender", ordering="mail_from")
    def envelope_sender(self, message: OutboundMessage) -> str:
        if message.system:
            # A DSN, a notice, a vacation reply or the panel's own mail: not a bounce.
            return format_html('<span class="queue-system">system</span> {}',
                               _cut(message.mail_from or "<>", ADDRESS_CHARS))
        return _cut(message.mail_from, ADDRESS_CHARS) if message.mail_from else "<> (bounce)"

    @admin.display(description="recipients")
    def recipient_addresses(self, message: OutboundMessage) -> str:
        shown, more = self._shown(message)
        return _lines([_cut(r.address, ADDRESS_CHARS) for r in shown], more)

    @admin.display(description="state")
    def recipient_states(self, message: OutboundMessage) -> str:
        shown, more = self._shown(message)
        return _lines([r.get_state_display() for r in shown], more)

    @admin.display(description="tries")
    def recipient_attempts(self, message: OutboundMessage) -> str:
        shown, more = self._shown(message)
        return _lines([r.attempts for r in shown], more)

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, message: OutboundMessage) -> object:
        return _when(message.next_attempt_at) if message.next_attempt_at else "-"

    @admin.display(description="last response")
    def recipient_responses(self, message: OutboundMessage) -> str:
        shown, more = self._shown(message)
        return _lines([_cut(r.last_response, RESPONSE_CHARS,
                            f"{r.remote_mta}: {r.last_response}" if r.remote_mta else "")
                       if r.last_response else "-" for r in shown], more)

    @admin.display(description="headers")
    def headers(self, message: OutboundMessage) -> str:
        raw = _raw(message)
        if raw is None:
            return "(message file missing)"
        head = raw.split(b"\r\n\r\n", 1)[0][:HEADER_PREVIEW]
        return format_html("<pre>{}</pre>", head.decode("utf-8", "replace"))

    @admin.display(description="text")
    def text(self, message: OutboundMessage) -> str:
        # The operator reads what is queued (a sign-up link that did not go out, say):
        # the text parts decoded, shown as escaped text, never as HTML, and nothing loaded.
        raw = _raw(message)
        if raw is None:
            return "(message file missing)"
        return format_html('<pre class="queue-text">{}</pre>', readable_text(raw))

    @admin.action(description="Retry now", permissions=["change"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[OutboundMessage]) -> None:
        count = operations.retry_now(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{_count(count, 'recipient')} handed to the worker "
                          "for an attempt now.")

    @admin.action(description="Bounce now", permissions=["change"])
    def bounce_now(self, request: HttpRequest, queryset: QuerySet[OutboundMessage]) -> None:
        bounced = operations.bounce_now(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{_count(bounced.recipients, 'recipient')} bounced; "
                          "the senders were notified.")
        if bounced.in_delivery:
            self.message_user(
                request, f"{_count(bounced.in_delivery, 'recipient')} being delivered right "
                "now left alone; bounce again once the attempt is over.", messages.WARNING)

    def delete_model(self, request: HttpRequest, obj: OutboundMessage) -> None:
        operations.delete([obj.pk])

    def delete_queryset(self, request: HttpRequest,
                        queryset: QuerySet[OutboundMessage]) -> None:
        operations.delete(queryset.values_list("pk", flat=True))


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
