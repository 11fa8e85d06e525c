"""Address suggestions while composing: the people a mailbox recently wrote to or heard from.

Derived from the cached header columns (Sent's To and Cc, INBOX's From), newest first,
reading a bounded number of rows; no address book is kept.
"""

from __future__ import annotations

from email.utils import getaddresses

from django.db.models import Q

from mailcore.models import Message
from mailcore.principal import Principal
from mailcore.webclient.folder_list import special_folder

SCAN = 400  # rows read from each folder per suggestion


def format_address(name: str, address: str) -> str:
    """Return "Name <address>" (quoted when the name needs it), or the bare address."""
    name = " ".join(name.split())
    if not name or name.lower() == address.lower():
        return address
    if any(ch in name for ch in '",.:;<>@()[]\\'):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def recent(principal: Principal, query: str = "", limit: int = 8) -> list[str]:
    """Return up to limit "Name <address>" strings matching query, most recent first."""
    query = query.strip()
    sent = special_folder(principal.mailbox_id, "sent", create=False)
    inbox = special_folder(principal.mailbox_id, "inbox")
    candidates: list[tuple] = []  # (date, header text)
    if sent is not None:
        rows = Message.objects.filter(folder=sent)
        if query:
            rows = rows.filter(Q(to_addrs__icontains=query) | Q(cc_addrs__icontains=query))
        for when, to, cc in rows.order_by("-uid").values_list(
                "internal_date", "to_addrs", "cc_addrs")[:SCAN]:
            candidates.append((when, f"{to}, {cc}"))
    if inbox is not None:
        rows = Message.objects.filter(folder=inbox)
        if query:
            rows = rows.filter(from_addr__icontains=query)
        for when, sender in rows.order_by("-uid").values_list(
                "internal_date", "from_addr")[:SCAN]:
            candidates.append((when, sender))
    candidates.sort(key=lambda c: c[0], reverse=True)
    own = principal.address.lower()
    needle = query.casefold()
    seen: set[str] = set()
    found = []
    for _, header in candidates:
        for name, address in getaddresses([header]):
            key = address.lower()
            if "@" not in key or key in seen or key == own:
                continue
            if needle and needle not in name.casefold() and needle not in key:
                continue
            seen.add(key)
            found.append(format_address(name, address))
            if len(found) >= limit:
                return found
    return found
