"""Writing mail: replies and forwards filled in, drafts kept in Drafts, and sending.

Sending takes the submission path (mailcore.sending): the same sender rules, hourly
limit, recipient limit and routing as port 587, DKIM signing, local delivery at once and
the queue for the rest. A copy goes to Sent with \\Seen. Bcc recipients get the message
but never see themselves named: the sent message has no Bcc field (the Sent copy and
drafts keep it, for the writer's eyes only).
"""

from __future__ import annotations

import mimetypes
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid

from django.conf import settings
from django.utils import timezone

from mailcore import directory
from mailcore.addresses import AddressError, split_address
from mailcore.directory import Route
from mailcore.message import mime
from mailcore.principal import Principal
from mailcore.sending import outgoing
from mailcore.sending.senders import SenderProblem, sender_addresses, sender_problem
from mailcore.store import messages as store_messages
from mailcore.store.delivery import QuotaExceeded
from mailcore.webclient import parts, preferences, reading
from mailcore.webclient.contacts import format_address
from mailcore.webclient.folder_list import NoSuchFolder, get_folder, role_of, special_folder

MODES = ("new", "reply", "reply_all", "forward", "forward_attached", "draft")
_QUOTE_LIMIT = 200_000  # characters of the original quoted in a reply
_MAX_REFERENCES = 20
_TOKEN = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")


class ComposeError(Exception):
    """The message cannot be sent (or saved) as it is; the text tells the user why."""


@dataclass(frozen=True)
class MessageRef:
    """A stored message, as the compose form carries it: "folder id:uid"."""

    folder_id: int
    uid: int

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.uid}"

    @classmethod
    def parse(cls, text: str | None) -> MessageRef | None:
        match = re.fullmatch(r"([0-9]{1,18}):([0-9]{1,18})", (text or "").strip())
        return cls(int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class PartRef:
    """An attachment of a stored message: "folder id:uid:section"."""

    folder_id: int
    uid: int
    path: str

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.uid}:{self.path}"

    @classmethod
    def parse(cls, text: str | None) -> PartRef | None:
        match = re.fullmatch(r"([0-9]{1,18}):([0-9]{1,18}):([0-9.]{1,100})", (text or "").strip())
        return cls(int(match[1]), int(match[2]), match[3]) if match else None


@dataclass
class Upload:
    name: str
    content_type: str
    data: bytes


@dataclass
class Attachment:
    """An attachment as the compose form lists it."""

    ref: PartRef
    name: str
    size: int
    content_type: str


@dataclass
class Draft:
    """Everything the compose form holds."""

    from_address: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str = ""
    references: str = ""
    kept: list[PartRef] = field(default_factory=list)  # attachments of stored messages
    attached: MessageRef | None = None  # a message forwarded as an attachment
    uploads: list[Upload] = field(default_factory=list)
    replying: MessageRef | None = None  # gets \Answered once sent
    forwarding: MessageRef | None = None  # gets $Forwarded once sent
    draft: MessageRef | None = None  # the saved draft this one replaces


@dataclass
class Sent:
    message_id: str
    recipients: int
    copy_saved: bool  # False: sent, but Sent had no room for the copy


# Senders and recipients ------------------------------------------------------------------

def parse_addresses(text: str) -> list[tuple[str, str]]:
    """Return (name, address) pairs from a To/Cc/Bcc field; raise ComposeError on a bad one."""
    found = []
    for name, address in getaddresses([" ".join(text.split())]):
        if not address and not name:
            continue
        try:
            split_address(address)
            if not address.isprintable():  # control characters cannot go in a header
                raise AddressError(address)
        except AddressError:
            shown = address or name
            raise ComposeError(f"“{shown}” is not an email address.") from None
        found.append((_printable(_one_line(name)), address.strip()))
    return found


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())


def _address(name: str, address: str) -> Address:
    # Given as its two halves: the email package parses an addr_spec with a non-ASCII
    # local part (RFC 6532) as a defect and raises, where the halves are written as-is.
    local, _, domain = address.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def _one_line(text: str) -> str:
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


# Filling in replies and forwards ----------------------------------------------------------

def signature(principal: Principal) -> str:
    return preferences.signature(principal.mailbox_id)


def prefill(principal: Principal, mode: str, ref: MessageRef | None) -> Draft:
    """Return the form's starting content for a new message, a reply, a forward or a draft.

    Raise NoSuchFolder or reading.NoSuchMessage for a message that is not this mailbox's.
    """
    draft = _prefill(principal, mode, ref)
    if mode != "draft":
        draft.body = _with_signature(draft.body, signature(principal))
    return draft


def _with_signature(body: str, text: str) -> str:
    """Put the signature above the quoted text, after the usual "-- " line (RFC 3676 4.3)."""
    if not text.strip():
        return body
    return "\n\n-- \n" + text.rstrip() + "\n" + body


def _prefill(principal: Principal, mode: str, ref: MessageRef | None) -> Draft:
    if mode not in MODES or mode == "new" or ref is None:
        return Draft(from_address=principal.address)
    opened = reading.load(principal.mailbox_id, ref.folder_id, ref.uid, prefer_html=False)
    mine = {a.lower() for a in sender_addresses(principal)}
    if mode == "draft":
        return _from_draft(principal, opened, ref, mine)
    headers = opened.headers
    subject = headers.get("subject", "")
    if mode in ("reply", "reply_all"):
        return _reply(principal, opened, ref, mine, everyone=mode == "reply_all")
    draft = Draft(from_address=_addressed_as(opened, mine, principal),
                  subject=_prefixed("Fwd:", subject), forwarding=ref)
    if mode == "forward_attached":
        draft.attached = ref
        return draft
    lines = ["", "", "---------- Forwarded message ----------",
             f"From: {headers.get('from', '')}",
             f"Date: {headers.get('date', '')}",
             f"Subject: {subject}",
             f"To: {headers.get('to', '')}"]
    if headers.get("cc"):
        lines.append(f"Cc: {headers['cc']}")
    draft.body = "\n".join(lines) + "\n\n" + opened.text()[:_QUOTE_LIMIT]
    draft.kept = [PartRef(ref.folder_id, ref.uid, p.path) for p in opened.attachments]
    return draft


def _prefixed(prefix: str, subject: str) -> str:
    if subject.lower().startswith(prefix.lower()):
        return subject
    return f"{prefix} {subject}".strip()


def _addressed_as(opened: reading.Opened, mine: set[str], principal: Principal) -> str:
    """Return which of the user's addresses the message was sent to (to answer from it)."""
    for _, address in opened.addresses("to") + opened.addresses("cc"):
        if address.lower() in mine:
            return address.lower()
    return principal.address


def _reply(principal: Principal, opened: reading.Opened, ref: MessageRef, mine: set[str],
           everyone: bool) -> Draft:
    headers = opened.headers
    senders = opened.addresses("from")
    if senders and all(a.lower() in mine for _, a in senders):
        to = opened.addresses("to")  # replying to one's own message: to its recipients
    else:
        to = opened.addresses("reply-to") or senders
    cc: list[tuple[str, str]] = []
    if everyone:
        to = to + [p for p in opened.addresses("to") if p[1].lower() not in mine]
        cc = [p for p in opened.addresses("cc") if p[1].lower() not in mine]
    to = _unique(to, exclude=set())
    cc = _unique(cc, exclude={a.lower() for _, a in to})
    message_id = headers.get("message-id", "").strip()
    references = headers.get("references", "").split() or headers.get("in-reply-to", "").split()
    if message_id:
        references.append(message_id)
    who = (senders[0][0] or senders[0][1]) if senders else "someone"
    when = opened.date.strftime("%a, %d %b %Y at %H:%M")
    quoted = "\n".join((">" if line.startswith(">") else "> ") + line
                       for line in opened.text()[:_QUOTE_LIMIT].rstrip().splitlines())
    return Draft(
        from_address=_addressed_as(opened, mine, principal),
        to=", ".join(format_address(n, a) for n, a in to),
        cc=", ".join(format_address(n, a) for n, a in cc),
        subject=_prefixed("Re:", headers.get("subject", "")),
        body=f"\n\nOn {when}, {who} wrote:\n{quoted}\n",
        in_reply_to=message_id,
        references=" ".join(references[-_MAX_REFERENCES:]),
        replying=ref,
    )


def _unique(pairs: list[tuple[str, str]], exclude: set[str]) -> list[tuple[str, str]]:
    seen = set(exclude)
    result = []
    for name, address in pairs:
        if address.lower() not in seen:
            seen.add(address.lower())
            result.append((name, address))
    return result


def _from_draft(principal: Principal, opened: reading.Opened, ref: MessageRef,
                mine: set[str]) -> Draft:
    headers = opened.headers
    senders = opened.addresses("from")
    sender = senders[0][1].lower() if senders else ""
    return Draft(
        from_address=sender if sender in mine else principal.address,
        to=headers.get("to", ""), cc=headers.get("cc", ""), bcc=headers.get("bcc", ""),
        subject=headers.get("subject", ""), body=_plain_body(opened),
        in_reply_to=headers.get("in-reply-to", ""), references=headers.get("references", ""),
        kept=[PartRef(ref.folder_id, ref.uid, p.path) for p in opened.attachments],
        draft=ref,
    )


def _plain_body(opened: reading.Opened) -> str:
    texts = [p for p in opened.layout.texts if p.content_type == "text/plain"]
    return parts.text(opened.raw, texts[0]) if texts else opened.text()


def attachments(principal: Principal, refs: list[PartRef]) -> list[Attachment]:
    """Return what the compose form lists for kept attachments (those still there)."""
    found = []
    for ref in refs:
        try:
            part, data = reading.part_of(principal.mailbox_id, ref.folder_id, ref.uid, ref.path)
        except (NoSuchFolder, reading.NoSuchMessage):
            continue
        found.append(Attachment(ref, part.filename or "attachment", len(data),
                                part.content_type))
    return found


# Building the message ---------------------------------------------------------------------

@dataclass
class _File:
    name: str
    content_type: str
    data: bytes


def _files(principal: Principal, draft: Draft) -> list[_File]:
    files = []
    for ref in draft.kept:
        try:
            part, data = reading.part_of(principal.mailbox_id, ref.folder_id, ref.uid, ref.path)
        except (NoSuchFolder, reading.NoSuchMessage):
            raise ComposeError("An attachment is no longer there; add it again.") from None
        files.append(_File(part.filename or "attachment", part.content_type, data))
    if draft.attached is not None:
        try:
            raw = reading.original(principal.mailbox_id, draft.attached.folder_id,
                                   draft.attached.uid)
        except (NoSuchFolder, reading.NoSuchMessage):
            raise ComposeError("The message to forward is no longer there.") from None
        subject = reading.headers_of(raw).get("subject", "") or "message"
        files.append(_File(parts.safe_filename(subject) + ".eml", "message/rfc822", raw))
    for upload in draft.uploads:
        files.append(_File(parts.safe_filename(upload.name) or "attachment",
                           _upload_type(upload), upload.data))
    return files


def _upload_type(upload: Upload) -> str:
    given = (upload.content_type or "").split(";")[0].strip().lower()
    if _TOKEN.match(given) and given != "application/octet-stream":
        return given
    guessed, _ = mimetypes.guess_type(upload.name)
    return guessed or "application/octet-stream"


def _address_objects(pairs: list[tuple[str, str]]) -> list[Address]:
    return [_address(name, address) for name, address in pairs]


def _recipient_field(text: str, lenient: bool) -> list[Address] | str:
    """Return a To/Cc/Bcc field's value; a draft keeps what it cannot parse as typed."""
    try:
        return _address_objects(parse_addresses(text))
    except ComposeError:
        if not lenient:
            raise
        return _one_line(text)


def build(principal: Principal, draft: Draft, *, with_bcc: bool, date: datetime | None = None,
          message_id: str | None = None, lenient: bool = False) -> bytes:
    """Return the message as RFC 5322 bytes (CRLF), attachments included.

    lenient (for drafts) keeps address fields that do not parse yet as they are.
    """
    sender = draft.from_address or principal.address
    fields = {"To": draft.to, "Cc": draft.cc}
    if with_bcc:
        fields["Bcc"] = draft.bcc
    values = {name: _recipient_field(text, lenient) for name, text in fields.items()}
    everyone = f"{sender} {draft.to} {draft.cc} {draft.bcc}"
    use = policy.SMTP if everyone.isascii() else policy.SMTPUTF8
    message = EmailMessage(policy=use)
    message["From"] = _address(_one_line(principal.display_name), sender)
    for name, value in values.items():
        if value:
            message[name] = value
    message["Subject"] = _one_line(draft.subject)
    message["Date"] = format_datetime(date or timezone.now())
    message["Message-ID"] = message_id or make_msgid(domain=settings.MAIL_HOSTNAME)
    if draft.in_reply_to.strip():
        message["In-Reply-To"] = _one_line(draft.in_reply_to)
    if draft.references.strip():
        message["References"] = _one_line(draft.references)
    body = draft.body.replace("\r\n", "\n").replace("\r", "\n")
    message.set_content(body if body.endswith("\n") else body + "\n")
    placeholders: dict[bytes, bytes] = {}
    for item in _files(principal, draft):
        maintype, _, subtype = item.content_type.partition("/")
        if item.content_type == "message/rfc822":
            # Attached byte for byte (its signatures stay valid): the generator would
            # rewrite a parsed message, so it writes a placeholder that is swapped back.
            token = f"X-Webmail-Placeholder-{secrets.token_hex(16)}".encode()
            placeholders[token] = item.data
            cte = "7bit" if item.data.isascii() else "8bit"
            message.add_attachment(token + b"\r\n", maintype="message", subtype="rfc822",
                                   cte=cte, filename=item.name)
        else:
            message.add_attachment(item.data, maintype=maintype, subtype=subtype,
                                   filename=item.name)
    raw = message.as_bytes()
    for token, data in placeholders.items():
        boundary = (message.get_boundary() or "").encode()
        if boundary and boundary in data:
            raise ComposeError("That message cannot be attached; forward it inline.")
        data = data if data.endswith(b"\r\n") else data + b"\r\n"
        raw = raw.replace(token + b"\r\n", data, 1)
    return raw


# Drafts ---------------------------------------------------------------------------------------

def save_draft(principal: Principal, draft: Draft) -> tuple[MessageRef, list[Attachment]]:
    """Store the draft in Drafts (\\Draft \\Seen), replacing the one it was saved as before.

    Return the new draft and its attachments (the form refers to them from now on).
    """
    content = build(principal, draft, with_bcc=True, lenient=True)
    drafts = special_folder(principal.mailbox_id, "drafts")
    assert drafts is not None
    try:
        _, uid = store_messages.append(drafts.pk, content, ["\\Draft", "\\Seen"])
    except QuotaExceeded:
        raise ComposeError("The mailbox is full: the draft could not be saved.") from None
    if draft.draft is not None:
        discard_draft(principal, draft.draft)
    ref = MessageRef(drafts.pk, uid)
    layout = parts.layout(mime.parse_structure(content))
    return ref, [Attachment(PartRef(drafts.pk, uid, p.path), p.filename or "attachment",
                            len(parts.content(content, p)), p.content_type)
                 for p in layout.attachments]


def discard_draft(principal: Principal, ref: MessageRef) -> bool:
    """Delete a saved draft for good (only a message flagged \\Draft in Drafts)."""
    try:
        folder = get_folder(principal.mailbox_id, ref.folder_id)
        message = reading.get_message(folder, ref.uid)
    except (NoSuchFolder, reading.NoSuchMessage):
        return False
    if role_of(folder) != "drafts" or not message.draft:
        return False
    store_messages.store_flags(folder.pk, [ref.uid], "add", ["\\Deleted"])
    store_messages.expunge_deleted(folder.pk, [ref.uid])
    return True


# Sending ------------------------------------------------------------------------------------

def _received(principal: Principal, peer_ip: str, secure: bool) -> bytes:
    """Return this hop's Received field (RFC 5321 section 4.4), as submission writes it."""
    ip = re.sub(r"[^0-9a-fA-F:.]", "", peer_ip)[:45] or "unknown"
    protocol = "HTTPS" if secure else "HTTP"
    return (f"Received: from [{ip}]\r\n\t(authenticated as {principal.address})\r\n"
            f"\tby {settings.MAIL_HOSTNAME} (mailcore webmail) with {protocol}"
            f" id {secrets.token_hex(8)};\r\n\t{format_datetime(timezone.now())}\r\n"
            ).encode("utf-8", "surrogateescape")


def _route(addresses: list[str]) -> tuple[set[int], set[str]]:
    """Return (local mailbox ids, remote addresses) for the recipients, as RCPT checks them."""
    local_ids: set[int] = set()
    remote: set[str] = set()
    for address in addresses:
        resolution = directory.resolve(address)
        if resolution.route is Route.INVALID:
            raise ComposeError(f"“{address}” is not an email address.")
        if resolution.route is Route.UNKNOWN_USER:
            raise ComposeError(f"There is no mailbox {address}.")
        if resolution.route is Route.OVER_QUOTA:
            raise ComposeError(f"The mailbox of {address} is full.")
        if resolution.route is Route.NOT_HOSTED:
            remote.add(address)
        else:
            local_ids |= resolution.mailbox_ids
            remote |= resolution.remote
    return local_ids, remote


def send(principal: Principal, draft: Draft, *, peer_ip: str, secure: bool) -> Sent:
    """Send the message through the submission path and keep a copy in Sent.

    Raise ComposeError, with the reason for the user, when it is refused.
    """
    sender = draft.from_address or principal.address
    pairs = parse_addresses(draft.to) + parse_addresses(draft.cc) + parse_addresses(draft.bcc)
    recipients = list(dict.fromkeys(a for _, a in pairs))
    if not recipients:
        raise ComposeError("Add at least one recipient.")
    problem = sender_problem(principal, sender)
    if problem is not None:
        raise ComposeError(_refusal(sender, problem))
    if outgoing.send_limit_reached(principal):
        raise _limit_reached(principal)
    if principal.max_recipients and len(recipients) > principal.max_recipients:
        raise ComposeError(f"A message may have at most {principal.max_recipients} recipients.")
    local_ids, remote = _route(recipients)
    date, message_id = timezone.now(), make_msgid(domain=settings.MAIL_HOSTNAME)
    content = build(principal, draft, with_bcc=False, date=date, message_id=message_id)
    if len(content) > settings.MESSAGE_SIZE_LIMIT:
        limit = settings.MESSAGE_SIZE_LIMIT // (1024 * 1024)
        raise ComposeError(f"The message is too big to send (the limit is {limit} MB).")
    try:
        outgoing.submit(content, principal=principal, mail_from=sender, local_ids=local_ids,
                        remote=remote, received=_received(principal, peer_ip, secure),
                        return_path=f"Return-Path: <{sender}>\r\n".encode())
    except outgoing.FromRefused as exc:
        raise ComposeError(_refusal(exc.address or "that sender", exc.problem)) from None
    except outgoing.SendLimitReached:
        raise _limit_reached(principal) from None
    except QuotaExceeded as exc:
        raise ComposeError("No room in the mailbox of " + ", ".join(exc.addresses) + ".") \
            from None
    copy_saved = _keep_copy(principal, draft, date, message_id)
    _mark_original(principal, draft.replying, "\\Answered")
    _mark_original(principal, draft.forwarding, "$Forwarded")
    if draft.draft is not None:
        discard_draft(principal, draft.draft)
    return Sent(message_id, len(recipients), copy_saved)


def _limit_reached(principal: Principal) -> ComposeError:
    return ComposeError(f"You have sent your {principal.send_limit_per_hour} messages for "
                        "this hour; try again later.")


def _refusal(sender: str, problem: SenderProblem) -> str:
    if problem is SenderProblem.DOMAIN_NOT_VERIFIED:
        # The same reason submission gives (smtp.replies.SENDER_DOMAIN_NOT_VERIFIED).
        return f"You may not send as {sender}: domain not verified."
    return f"You may not send as {sender}."


def _keep_copy(principal: Principal, draft: Draft, date: datetime, message_id: str) -> bool:
    sent = special_folder(principal.mailbox_id, "sent")
    assert sent is not None
    copy = build(principal, draft, with_bcc=True, date=date, message_id=message_id)
    try:
        store_messages.append(sent.pk, copy, ["\\Seen"])
    except QuotaExceeded:
        return False
    return True


def _mark_original(principal: Principal, ref: MessageRef | None, flag: str) -> None:
    if ref is None:
        return
    try:
        folder = get_folder(principal.mailbox_id, ref.folder_id)
    except NoSuchFolder:
        return
    store_messages.store_flags(folder.pk, [ref.uid], "add", [flag])
