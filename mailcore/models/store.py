"""Store tables: immutable blobs, folders with their UID counters, messages, expunge tombstones."""

from __future__ import annotations

from django.db import models


class Blob(models.Model):
    """A raw message, written once to the blob store and referenced by message rows."""

    key = models.CharField(max_length=64, primary_key=True, help_text="SHA-256 of the content.")
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class MessageText(models.Model):
    """A message's body text, kept for full-text search (Postgres indexes it with GIN).

    One per blob, like the blob itself: stored once for every folder that holds the message.
    """

    blob = models.OneToOneField(Blob, primary_key=True, on_delete=models.CASCADE,
                                related_name="text")
    text = models.TextField()

    def __str__(self) -> str:
        return f"text of {self.blob_id}"


class FolderQuerySet(models.QuerySet):
    def for_mailbox(self, mailbox) -> FolderQuerySet:
        return self.filter(mailbox=mailbox)


class Folder(models.Model):
    class SpecialUse(models.TextChoices):
        NONE = "", "None"
        SENT = "\\Sent", "Sent"
        DRAFTS = "\\Drafts", "Drafts"
        TRASH = "\\Trash", "Trash"
        JUNK = "\\Junk", "Junk"
        ARCHIVE = "\\Archive", "Archive"

    mailbox = models.ForeignKey(
        "mailcore.Mailbox", on_delete=models.CASCADE, related_name="folders")
    name = models.CharField(max_length=512, help_text="Full name, '/'-separated, in Unicode.")
    special_use = models.CharField(max_length=16, choices=SpecialUse.choices, blank=True)
    uidvalidity = models.BigIntegerField()
    uidnext = models.BigIntegerField(default=1)
    highestmodseq = models.BigIntegerField(default=1)
    recent_uid = models.BigIntegerField(
        default=1, help_text="First UID no session has yet seen as \\Recent (RFC 3501 2.3.2).")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FolderQuerySet.as_manager()

    class Meta:
        ordering = ["mailbox", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="folder_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.name}"


class Subscription(models.Model):
    """A folder name the user subscribed to (RFC 3501 section 6.3.6, RFC 9051 6.3.7).

    A name, not a folder: one may subscribe to a name that does not exist, and deleting
    a folder keeps its subscription.
    """

    mailbox = models.ForeignKey(
        "mailcore.Mailbox", on_delete=models.CASCADE, related_name="subscriptions")
    name = models.CharField(max_length=512, help_text="Full name, '/'-separated, in Unicode.")

    class Meta:
        ordering = ["mailbox", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="subscription_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.name}"


class MessageQuerySet(models.QuerySet):
    def in_folder(self, folder: Folder) -> MessageQuerySet:
        return self.filter(folder=folder).order_by("uid")


class Message(models.Model):
    """One message in one folder; many rows may share a blob."""

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="messages")
    uid = models.BigIntegerField()
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="messages")
    size = models.BigIntegerField()
    internal_date = models.DateTimeField()
    modseq = models.BigIntegerField()
    seen = models.BooleanField(default=False)
    answered = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    draft = models.BooleanField(default=False)
    keywords = models.JSONField(default=list, blank=True)
    pop3_hidden = models.BooleanField(
        default=False, help_text="Kept on the server but no longer offered over POP3.",
    )
    # Header fields cached at delivery for listing and SEARCH.
    subject = models.TextField(blank=True)
    from_addr = models.TextField(blank=True)
    to_addrs = models.TextField(blank=True)
    cc_addrs = models.TextField(blank=True)
    message_id = models.CharField(max_length=998, blank=True)
    sent_date = models.DateTimeField(null=True, blank=True)
    sent_on = models.DateField(
        null=True, blank=True, help_text="The Date: header's own calendar date (SEARCH SENT*).")
    # Sort and thread keys (mailcore.message.sortkeys, RFC 5256 and RFC 5957): casemapped
    # base subject, first addresses' mailboxes and display names; the parents' msg-ids.
    sort_subject = models.TextField(blank=True, default="")
    sort_from = models.TextField(blank=True, default="")
    sort_to = models.TextField(blank=True, default="")
    sort_cc = models.TextField(blank=True, default="")
    sort_display_from = models.TextField(blank=True, default="")
    sort_display_to = models.TextField(blank=True, default="")
    thread_refs = models.TextField(blank=True, default="")
    # What webmail finds a conversation by (sortkeys.thread_root): the first parent's msg-id,
    # or the message's own.
    thread_root = models.CharField(max_length=255, blank=True, default="")
    # IMAP's ENVELOPE and BODYSTRUCTURE, computed once and kept as JSON.
    envelope = models.JSONField(null=True, blank=True)
    bodystructure = models.JSONField(null=True, blank=True)
    # The header block (up to and with its blank line), so that FETCH of header fields
    # reads no blob: b"" when too big to keep (read from the blob), null until computed.
    header = models.BinaryField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["folder", "uid"]
        constraints = [
            models.UniqueConstraint(fields=["folder", "uid"], name="message_unique_uid"),
        ]
        indexes = [
            models.Index(fields=["folder", "modseq"], name="message_folder_modseq"),
            models.Index(fields=["folder", "internal_date"], name="message_folder_date"),
            models.Index(fields=["folder"], condition=models.Q(seen=False),
                         name="message_folder_unseen"),
            # Webmail's unread counts (mailcore.webclient.folder_list), on every page.
            models.Index(fields=["folder"], condition=models.Q(seen=False, deleted=False),
                         name="message_folder_unread"),
            # The webmail's sorted pages (mailcore.store.sorting.PAGE_ORDERS).
            models.Index(fields=["folder", "sort_subject", "uid"], name="message_folder_subject"),
            models.Index(fields=["folder", "sort_display_from", "uid"],
                         name="message_folder_from"),
            models.Index(fields=["folder", "sort_display_to", "uid"], name="message_folder_to"),
            models.Index(fields=["folder", "size", "uid"], name="message_folder_size"),
            models.Index(fields=["folder", "thread_root", "uid"], name="message_folder_thread"),
        ]

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.uid}"


class Expunged(models.Model):
    """A tombstone: this UID left the folder at this modseq (for CONDSTORE/QRESYNC).

    Until kept_until it also keeps what FETCH shows of the message: a session not yet told
    of the expunge may still read it (RFC 2180 section 4.1.1). collect_orphans() clears
    that, and only then may the blob go.
    """

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="expunged")
    uid = models.BigIntegerField()
    modseq = models.BigIntegerField()
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, blank=True,
                             related_name="+")
    size = models.BigIntegerField(null=True, blank=True)
    internal_date = models.DateTimeField(null=True, blank=True)
    seen = models.BooleanField(default=False)
    answered = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    draft = models.BooleanField(default=False)
    keywords = models.JSONField(default=list, blank=True)
    envelope = models.JSONField(null=True, blank=True)
    bodystructure = models.JSONField(null=True, blank=True)
    kept_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["folder", "modseq"], name="expunged_folder_modseq"),
            models.Index(fields=["folder", "uid"], condition=models.Q(blob__isnull=False),
                         name="expunged_kept_uid"),
            models.Index(fields=["kept_until"], condition=models.Q(kept_until__isnull=False),
                         name="expunged_kept_until"),
        ]
        verbose_name_plural = "expunged"

    def __str__(self) -> str:
        return f"{self.folder_id}:{self.uid}@{self.modseq}"
