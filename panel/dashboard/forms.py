"""Forms of the operator's dashboard."""

from __future__ import annotations

from typing import Any

from django import forms

from mailcore import selfservice
from mailcore.models import CustomerLimits
from panel.inputs import BIGINT_MAX, INTEGER_MAX, MB


class LimitsForm(forms.Form):
    # The bounds are the columns': beyond them the database refuses the number.
    max_domains = forms.IntegerField(label="Domains", min_value=0, max_value=INTEGER_MAX,
                                     help_text="0: no limit.")
    max_mailboxes = forms.IntegerField(label="Mailboxes", min_value=0, max_value=INTEGER_MAX,
                                       help_text="0: no limit.")
    max_storage_mb = forms.IntegerField(
        label="Storage (MB)", min_value=0, max_value=BIGINT_MAX // MB,
        help_text="The sum of the customer's mailbox quotas. 0: no limit.")

    def __init__(self, *args: Any, user, **kwargs: Any) -> None:
        limits = selfservice.limits_for(user)
        kwargs.setdefault("initial", {"max_domains": limits.max_domains,
                                      "max_mailboxes": limits.max_mailboxes,
                                      "max_storage_mb": limits.max_storage_bytes // MB})
        super().__init__(*args, **kwargs)
        self.user = user

    def save(self) -> CustomerLimits:
        data = self.cleaned_data
        return selfservice.set_limits(self.user, data["max_domains"], data["max_mailboxes"],
                                    data["max_storage_mb"] * MB)
