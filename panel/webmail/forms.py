"""Forms of the webmail pages; they read and check input, the services do the work."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import MaxLengthValidator

from mailcore.models import SenderRule
from mailcore.principal import Principal
from mailcore.sending.senders import sender_addresses
from mailcore.webclient import compose, listing
from panel.customers.forms import PasswordFields


class LoginForm(forms.Form):
    address = forms.CharField(
        label="Email address", max_length=320,
        widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True,
                                       "autocapitalize": "none", "spellcheck": "false"}))
    password = forms.CharField(
        label="Password", strip=False, max_length=1024,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="The mailbox password, or one of its app passwords.")


class SearchForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200)
    sender = forms.CharField(label="From", required=False, max_length=200)
    recipient = forms.CharField(label="To or Cc", required=False, max_length=200)
    subject = forms.CharField(label="Subject", required=False, max_length=200)
    body = forms.CharField(label="Text", required=False, max_length=200,
                           help_text="Words in the message text only.")
    since = forms.DateField(label="From date", required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To date", required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    unread = forms.BooleanField(label="Unread", required=False)
    flagged = forms.BooleanField(label="Flagged", required=False)

    def query(self) -> listing.Query:
        if not self.is_valid():
            return listing.Query()
        data = self.cleaned_data
        return listing.Query(
            text=data["q"].strip(), sender=data["sender"].strip(),
            recipient=data["recipient"].strip(), subject=data["subject"].strip(),
            body=data["body"].strip(), since=data["since"],
            before=listing.day_after(data["until"]), unread=data["unread"],
            flagged=data["flagged"])

    @property
    def advanced(self) -> bool:
        """Whether a field beyond the quick search box is in use (keep them shown)."""
        if not self.is_bound or not self.is_valid():
            return False
        return any(self.cleaned_data[name] for name in
                   ("sender", "recipient", "subject", "body", "since", "until", "unread",
                    "flagged"))


class SuggestForm(forms.Form):
    # A CharField refuses NUL characters, which Postgres cannot compare text with.
    q = forms.CharField(required=False)

    def clean_q(self) -> str:
        return self.cleaned_data["q"][:100]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            return [super(MultipleFileField, self).clean(d, initial) for d in data if d]
        return [super().clean(data, initial)] if data else []


class ComposeForm(forms.Form):
    from_address = forms.ChoiceField(label="From")
    to = forms.CharField(label="To", required=False, max_length=10000,
                         widget=forms.TextInput(attrs={"autocomplete": "off",
                                                       "data-suggest": "1",
                                                       "spellcheck": "false"}))
    cc = forms.CharField(label="Cc", required=False, max_length=10000,
                         widget=forms.TextInput(attrs={"autocomplete": "off",
                                                       "data-suggest": "1",
                                                       "spellcheck": "false"}))
    bcc = forms.CharField(label="Bcc", required=False, max_length=10000,
                          widget=forms.TextInput(attrs={"autocomplete": "off",
                                                        "data-suggest": "1",
                                                        "spellcheck": "false"}))
    subject = forms.CharField(label="Subject", required=False, max_length=998)
    body = forms.CharField(label="Message", required=False, strip=False,
                           widget=forms.Textarea(attrs={"rows": 16}))
    attachments = MultipleFileField(label="Attach files", required=False)
    # Where the message comes from, carried as refs the services check against the mailbox.
    kept = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    attached = forms.CharField(required=False, widget=forms.HiddenInput)
    in_reply_to = forms.CharField(required=False, max_length=998, widget=forms.HiddenInput)
    references = forms.CharField(required=False, max_length=20000, widget=forms.HiddenInput)
    replying = forms.CharField(required=False, widget=forms.HiddenInput)
    forwarding = forms.CharField(required=False, widget=forms.HiddenInput)
    draft = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, principal: Principal, kept_choices: list[str] | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        senders = sender_addresses(principal)
        self.fields["from_address"].choices = [
            (a, f"{principal.display_name} <{a}>" if principal.display_name else a)
            for a in senders]
        choices = kept_choices if kept_choices is not None else self.data.getlist("kept") \
            if hasattr(self.data, "getlist") else []
        # Any well-formed ref may be posted; the services refuse another mailbox's.
        self.fields["kept"].choices = [(c, c) for c in choices if compose.PartRef.parse(c)]

    def clean_attachments(self) -> list:
        files = self.cleaned_data["attachments"]
        # Refused before the files are read: nothing bigger than a message may be.
        if sum(f.size for f in files) > settings.MESSAGE_SIZE_LIMIT:
            limit = settings.MESSAGE_SIZE_LIMIT // (1024 * 1024)
            raise forms.ValidationError(f"The files are too big to send (the limit is "
                                        f"{limit} MB a message).")
        return files

    def draft_data(self) -> compose.Draft:
        """Return the form's content as the compose services take it (after is_valid)."""
        data = self.cleaned_data
        uploads = [compose.Upload(f.name, f.content_type or "", f.read())
                   for f in data["attachments"]]
        return compose.Draft(
            from_address=data["from_address"], to=data["to"], cc=data["cc"], bcc=data["bcc"],
            subject=data["subject"], body=data["body"], in_reply_to=data["in_reply_to"],
            references=data["references"],
            kept=[r for r in (compose.PartRef.parse(k) for k in data["kept"]) if r],
            attached=compose.MessageRef.parse(data["attached"]), uploads=uploads,
            replying=compose.MessageRef.parse(data["replying"]),
            forwarding=compose.MessageRef.parse(data["forwarding"]),
            draft=compose.MessageRef.parse(data["draft"]),
        )

    @staticmethod
    def initial_from(draft: compose.Draft) -> dict:
        return {
            "from_address": draft.from_address, "to": draft.to, "cc": draft.cc,
            "bcc": draft.bcc, "subject": draft.subject, "body": draft.body,
            "kept": [str(r) for r in draft.kept],
            "attached": str(draft.attached) if draft.attached else "",
            "in_reply_to": draft.in_reply_to, "references": draft.references,
            "replying": str(draft.replying) if draft.replying else "",
            "forwarding": str(draft.forwarding) if draft.forwarding else "",
            "draft": str(draft.draft) if draft.draft else "",
        }


class FolderCreateForm(forms.Form):
    name = forms.CharField(label="New folder", max_length=200)
    parent = forms.TypedChoiceField(label="Inside", required=False, coerce=int,
                                    empty_value=None)

    def __init__(self, *args, folders: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["parent"].choices = [("", "(top level)")] + [
            (f.id, f.name) for f in folders]


class FolderRenameForm(forms.Form):
    name = forms.CharField(label="New name", max_length=200)


class SettingsForm(forms.Form):
    display_name = forms.CharField(
        label="Your name", max_length=200, required=False,
        help_text="Shown to the people you write to, beside your address.")
    signature = forms.CharField(
        label="Signature", required=False, max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Added below new messages, replies and forwards.")
    vacation_enabled = forms.BooleanField(label="Send an automatic reply", required=False)
    vacation_subject = forms.CharField(
        label="Reply subject", max_length=200, required=False,
        help_text='Leave empty for "Auto:" and the subject of the message answered.')
    vacation_body = forms.CharField(
        label="Reply text", required=False, max_length=10000,
        widget=forms.Textarea(attrs={"rows": 5}))
    vacation_start = forms.DateField(label="First day", required=False,
                                     widget=forms.DateInput(attrs={"type": "date"}))
    vacation_end = forms.DateField(label="Last day", required=False,
                                   widget=forms.DateInput(attrs={"type": "date"}))
    vacation_interval_days = forms.IntegerField(
        label="Answer each sender once every", min_value=1, max_value=30, initial=7,
        help_text="days. Mailing lists, bounces and automatic mail are never answered.")

    def clean(self):
        data = super().clean()
        if data.get("vacation_enabled") and not (data.get("vacation_body") or "").strip():
            self.add_error("vacation_body", "Write the text of the automatic reply.")
        start, end = data.get("vacation_start"), data.get("vacation_end")
        if start and end and end < start:
            self.add_error("vacation_end", "The last day comes before the first.")
        return data


class CurrentPasswordField(forms.CharField):
    """The mailbox's own password, asked again before its credentials change."""

    def __init__(self, **kwargs) -> None:
        super().__init__(label="Current password", strip=False, max_length=1024,
                         widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
                         help_text="The mailbox password (not an app password).", **kwargs)


class PasswordChangeForm(PasswordFields):
    """The mailbox user's new password, typed twice, after the current one."""

    field_order = ["current_password", "password1", "password2"]
    current_password = CurrentPasswordField()

    def __init__(self, *args, address: str = "", **kwargs) -> None:
        # Two forms share the settings page: their own ids (they post to their own URLs).
        super().__init__(*args, auto_id="pw_%s", **kwargs)
        self.address = address
        for name in ("password1", "password2"):
            self.fields[name].max_length = 1024
            self.fields[name].validators.append(MaxLengthValidator(1024))
        self.fields["password1"].label = "New password"
        self.fields["password2"].label = "New password (again)"

    def password_owner(self):
        # An unsaved user: what UserAttributeSimilarityValidator compares the password with.
        return get_user_model()(username=self.address.partition("@")[0], email=self.address)


class AppPasswordForm(forms.Form):
    """A new app password: a name for the device, after the current password."""

    name = forms.CharField(label="Name", max_length=100,
                           help_text="Which device or program uses it, e.g. “Phone”.")
    current_password = CurrentPasswordField()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, auto_id="app_%s", **kwargs)


class SenderRuleForm(forms.Form):
    kind = forms.ChoiceField(label="List", choices=SenderRule.Kind.choices,
                             widget=forms.RadioSelect, initial=SenderRule.Kind.BLOCK)
    sender = forms.CharField(
        label="Sender", max_length=254,
        help_text="An address (someone@example.com) or a whole domain (example.com). "
                  "Mail from a blocked sender is refused; mail from an allowed one is never "
                  "treated as spam.")
