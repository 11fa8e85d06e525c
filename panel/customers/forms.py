"""Forms of the customer pages; each save() calls a mailcore service and puts its refusal
next to the field it concerns."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation

from mailcore import directory, selfservice
from mailcore.addresses import (
    AddressError,
    normalize_address,
    normalize_domain,
    normalize_local_part,
)
from mailcore.directory import DirectoryError
from mailcore.models import Alias, AppPassword, Domain, Mailbox
from mailcore.selfservice import LimitExceeded
from panel.inputs import BIGINT_MAX, MB

# A quota in bytes must fit the bigint column it is kept in.
MAX_QUOTA_MB = BIGINT_MAX // MB


def split_destinations(text: str) -> list[str]:
    return [d for d in re.split(r"[\s,;]+", text) if d]


class DestinationsField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return split_destinations(super().to_python(value) or "")

    def validate(self, value: list[str]) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        bad = []
        for address in value:
            try:
                normalize_address(address)
            except AddressError:
                bad.append(address)
        if bad:
            raise forms.ValidationError("Not an email address: " + ", ".join(bad))

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value


class ServiceForm(forms.Form):
    """A form whose save() runs a service; a DirectoryError becomes a form error."""

    error_field: str | None = None

    def save(self) -> Any:
        try:
            return self.perform()
        except DirectoryError as exc:
            field = None if isinstance(exc, LimitExceeded) else self.error_field
            self.add_error(field, str(exc))
            return None

    def perform(self) -> Any:
        raise NotImplementedError


class DomainForm(ServiceForm):
    error_field = "name"
    name = forms.CharField(
        label="Domain name", max_length=253,
        help_text="The domain you own, such as example.com.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none",
                                      "spellcheck": "false", "placeholder": "example.com"}))

    def __init__(self, *args: Any, user, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_name(self) -> str:
        try:
            return normalize_domain(self.cleaned_data["name"])
        except AddressError as exc:
            raise forms.ValidationError("Enter a domain name such as example.com.") from exc

    def perform(self) -> Domain:
        return selfservice.add_domain(self.user, self.cleaned_data["name"])


class PasswordFields(forms.Form):
    """A new mailbox password, typed twice, checked by Django's password validators."""

    password1 = forms.CharField(
        label="Password", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html())
    password2 = forms.CharField(
        label="Password (again)", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def password_owner(self) -> Any:
        return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first:
            try:
                password_validation.validate_password(first, self.password_owner())
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


def _owner_like(local_part: str, domain: Domain, display_name: str) -> Any:
    # An unsaved user: what UserAttributeSimilarityValidator compares the password with.
    return get_user_model()(username=local_part, email=f"{local_part}@{domain.name}",
                            first_name=display_name[:150])


class MailboxCreateForm(PasswordFields, ServiceForm):
    error_field = "local_part"
    field_order = ["local_part", "display_name", "password1", "password2", "quota_mb"]

    local_part = forms.CharField(
        label="Address", max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none",
                                      "spellcheck": "false"}))
    display_name = forms.CharField(
        label="Display name", max_length=200, required=False,
        help_text="Shown as the sender's name, e.g. Alice Example.")
    quota_mb = forms.IntegerField(label="Quota (MB)", min_value=0, max_value=MAX_QUOTA_MB)

    def __init__(self, *args: Any, user, domain: Domain, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user, self.domain = user, domain
        self.fields["local_part"].help_text = f"The name before @{domain.name}."
        available = selfservice.available_storage(user)
        default = settings.DEFAULT_QUOTA // MB
        if available is None:
            self.fields["quota_mb"].help_text = "0 means no limit."
        else:
            default = min(default, available // MB) if default else available // MB
            self.fields["quota_mb"].help_text = (
                f"{available // MB} MB of your plan's storage is still free to give out.")
        self.fields["quota_mb"].initial = default

    def password_owner(self) -> Any:
        return _owner_like(self.cleaned_data.get("local_part", ""), self.domain,
                           self.cleaned_data.get("display_name", ""))

    def clean_local_part(self) -> str:
        try:
            return normalize_local_part(self.cleaned_data["local_part"])
        except AddressError as exc:
            raise forms.ValidationError(
                "Use letters, digits and . _ - + only (no spaces, no @).") from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        try:
            selfservice.check_can_add_mailbox(self.user)
        except LimitExceeded as exc:
            self.add_error(None, str(exc))
        if cleaned.get("quota_mb") is not None:
            try:
                selfservice.check_quota(self.user, cleaned["quota_mb"] * MB)
            except DirectoryError as exc:
                self.add_error("quota_mb", str(exc))
        return cleaned

    def perform(self) -> Mailbox:
        data = self.cleaned_data
        return selfservice.add_mailbox(self.user, self.domain, data["local_part"],
                                     data["password1"], data["display_name"],
                                     data["quota_mb"] * MB)


class MailboxEditForm(ServiceForm):
    error_field = "quota_mb"
    display_name = forms.CharField(label="Display name", max_length=200, required=False)
    quota_mb = forms.IntegerField(label="Quota (MB)", min_value=0, max_value=MAX_QUOTA_MB)

    def __init__(self, *args: Any, user, mailbox: Mailbox, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"display_name": mailbox.display_name,
                                      "quota_mb": mailbox.quota_bytes // MB})
        super().__init__(*args, **kwargs)
        self.user, self.mailbox = user, mailbox
        available = selfservice.available_storage(user)
        if available is None:
            self.fields["quota_mb"].help_text = "0 means no limit."
        else:
            self.fields["quota_mb"].help_text = (
                f"Up to {(available + mailbox.quota_bytes) // MB} MB with your plan.")

    def clean_quota_mb(self) -> int:
        quota = self.cleaned_data["quota_mb"]
        if quota * MB != self.mailbox.quota_bytes:
            try:
                selfservice.check_quota(self.user, quota * MB, replacing=self.mailbox)
            except DirectoryError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return quota

    def perform(self) -> Mailbox:
        mailbox = self.mailbox
        mailbox.display_name = self.cleaned_data["display_name"]
        mailbox.save(update_fields=["display_name"])
        quota = self.cleaned_data["quota_mb"] * MB
        if quota != mailbox.quota_bytes:
            selfservice.set_mailbox_quota(self.user, mailbox, quota)
        return mailbox


class MailboxPasswordForm(PasswordFields, ServiceForm):
    error_field = "password1"

    def __init__(self, *args: Any, mailbox: Mailbox, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mailbox = mailbox

    def password_owner(self) -> Any:
        return _owner_like(self.mailbox.local_part, self.mailbox.domain,
                           self.mailbox.display_name)

    def perform(self) -> Mailbox:
        directory.set_password(self.mailbox, self.cleaned_data["password1"])
        return self.mailbox


class Pop3PolicyForm(ServiceForm):
    error_field = "pop3_policy"
    pop3_policy = forms.ChoiceField(
        label="When a POP3 client deletes a message", choices=Mailbox.Pop3Policy.choices,
        widget=forms.RadioSelect,
        help_text="Keep the server copy to go on reading it in webmail and IMAP.")

    def __init__(self, *args: Any, mailbox: Mailbox, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"pop3_policy": mailbox.pop3_policy})
        super().__init__(*args, **kwargs)
        self.mailbox = mailbox

    def perform(self) -> Mailbox:
        directory.set_pop3_policy(self.mailbox, self.cleaned_data["pop3_policy"])
        return self.mailbox


class ForwardForm(ServiceForm):
    error_field = "destinations"
    destinations = DestinationsField(
        label="Forward to", required=False,
        help_text="Addresses, one per line. Leave empty to stop forwarding.")
    keep_copy = forms.BooleanField(label="Keep a copy in this mailbox", required=False)

    def __init__(self, *args: Any, mailbox: Mailbox, **kwargs: Any) -> None:
        forward = selfservice.get_forward(mailbox)
        kwargs.setdefault("initial", {"destinations": forward.destinations,
                                      "keep_copy": forward.keep_copy})
        super().__init__(*args, **kwargs)
        self.mailbox = mailbox

    def perform(self) -> Mailbox:
        selfservice.set_forward(self.mailbox, self.cleaned_data["destinations"],
                              self.cleaned_data["keep_copy"])
        return self.mailbox


class AliasForm(ServiceForm):
    error_field = "local_part"
    local_part = forms.CharField(
        label="Alias", max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none",
                                      "spellcheck": "false"}))
    destinations = DestinationsField(
        label="Delivers to", help_text="Addresses here or elsewhere, one per line.")

    def __init__(self, *args: Any, domain: Domain, alias: Alias | None = None,
                 **kwargs: Any) -> None:
        if alias is not None:
            kwargs.setdefault("initial", {"local_part": alias.local_part,
                                          "destinations": alias.destinations})
        super().__init__(*args, **kwargs)
        self.domain, self.alias = domain, alias
        self.fields["local_part"].help_text = f"The name before @{domain.name}."
        if alias is not None:
            self.fields["local_part"].disabled = True
            self.error_field = "destinations"

    def clean_local_part(self) -> str:
        if self.alias is not None:
            return self.alias.local_part
        try:
            return normalize_local_part(self.cleaned_data["local_part"])
        except AddressError as exc:
            raise forms.ValidationError(
                "Use letters, digits and . _ - + only (no spaces, no @).") from exc

    def perform(self) -> Alias:
        destinations = self.cleaned_data["destinations"]
        if self.alias is not None:
            selfservice.set_alias_destinations(self.alias, destinations)
            return self.alias
        return selfservice.add_alias(self.domain, self.cleaned_data["local_part"], destinations)


class CatchAllForm(ServiceForm):
    error_field = "destinations"
    destinations = DestinationsField(
        label="Send mail for unknown names to", required=False,
        help_text="Addresses, one per line. Leave empty to refuse mail for unknown names "
                  "(recommended: catch-alls attract spam).")

    def __init__(self, *args: Any, domain: Domain, **kwargs: Any) -> None:
        catch_all = selfservice.get_catch_all(domain)
        kwargs.setdefault("initial", {"destinations": catch_all.destinations
                                      if catch_all else []})
        super().__init__(*args, **kwargs)
        self.domain = domain

    def perform(self) -> Domain:
        selfservice.set_catch_all(self.domain, self.cleaned_data["destinations"])
        return self.domain


class SenderChecksForm(ServiceForm):
    error_field = "dmarc_reject"
    dmarc_reject = forms.ChoiceField(
        label="Mail that its sender's DMARC policy says to reject",
        choices=Domain.DmarcReject.choices, widget=forms.RadioSelect,
        help_text="A sender's domain publishes DMARC to say what to do with mail that "
                  "claims to come from it but cannot prove it (a forgery, or mail broken "
                  "by a forwarder). Refusing it tells the sending server at once.")

    def __init__(self, *args: Any, domain: Domain, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"dmarc_reject": domain.dmarc_reject})
        super().__init__(*args, **kwargs)
        self.domain = domain

    def perform(self) -> Domain:
        selfservice.set_dmarc_reject(self.domain, self.cleaned_data["dmarc_reject"])
        return self.domain


class SpamFilterForm(ServiceForm):
    error_field = "spam_sensitivity"
    spam_sensitivity = forms.ChoiceField(
        label="Spam sensitivity", choices=Domain.SpamSensitivity.choices,
        widget=forms.RadioSelect,
        help_text="How readily mail is filed to Junk or refused as spam.")
    greylisting = forms.BooleanField(
        label="Greylisting", required=False,
        help_text="Ask unknown servers whose mail looks doubtful to try again in a few "
                  "minutes; real mail servers do, most spam senders do not. Such mail "
                  "arrives a little later.")

    def __init__(self, *args: Any, domain: Domain, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"spam_sensitivity": domain.spam_sensitivity,
                                      "greylisting": domain.greylisting})
        super().__init__(*args, **kwargs)
        self.domain = domain

    def perform(self) -> Domain:
        selfservice.set_spam_filter(self.domain, self.cleaned_data["spam_sensitivity"],
                                    self.cleaned_data["greylisting"])
        return self.domain


class AppPasswordForm(ServiceForm):
    error_field = "name"
    name = forms.CharField(label="Name", max_length=100,
                           help_text="Which device or program uses it, e.g. “Phone”.")

    def __init__(self, *args: Any, mailbox: Mailbox, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mailbox = mailbox

    def perform(self) -> tuple[AppPassword, str]:
        return directory.add_app_password(self.mailbox, self.cleaned_data["name"])


class ConfirmNameForm(forms.Form):
    """Type the name of what is about to be deleted, to confirm."""

    confirm = forms.CharField(label="Type the domain name to confirm",
                              widget=forms.TextInput(attrs={"autocomplete": "off",
                                                            "autocapitalize": "none"}))

    def __init__(self, *args: Any, expected: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected = expected

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip().lower().rstrip(".")
        if value != self.expected:
            raise forms.ValidationError(f"Type {self.expected} exactly.")
        return value
