"""Full-text search of message bodies: the text kept per blob, and the query over it.

On Postgres each stored message's body text is kept (MessageText) as it is stored, and a
GIN index over its tsvector (the 'simple' configuration: no stemming, as mail comes in
every language) answers a word search in a 50,000-message folder without reading blobs.
Other databases (SQLite) keep no text: their searches read the blobs, as before.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import html
import re
from collections.abc import Iterable

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import QuerySet

from mailcore.message.summary import split_header_block
from mailcore.models import MessageText
from mailcore.store import sql

CONFIG = "simple"
TEXT_LIMIT = 200_000  # characters kept per message: a tsvector holds at most 1 MB
INDEX_NAME = "message_text_search"
_MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
_WORD = re.compile(r"\w+")


def enabled() -> bool:
    """Return whether bodies are indexed here (Postgres) rather than read at search time."""
    return connection.vendor == "postgresql"


# How much of a message is read for its text: base64 and markup take room the text does not.
PARSE_LIMIT = 4 * TEXT_LIMIT + 65536


def body_text(raw: bytes) -> str:
    """Return the body's text parts decoded (transfer encoding and charset)."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        texts = []
        for part in message.walk():
            if part.is_multipart() or part.get_content_maintype() not in ("text", "message"):
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            charset = part.get_content_charset() or "utf-8"
            try:
                texts.append(payload.decode(charset, "replace"))
            except LookupError:
                texts.append(payload.decode("utf-8", "replace"))
        return "\n".join(texts)
    except (email.errors.MessageError, ValueError, LookupError, AssertionError):
        body = raw[len(split_header_block(raw)):]
        return body.decode("utf-8", "replace")


def searchable(raw: bytes) -> str | None:
    """Return the text to index for a message (markup dropped), or None where none is kept."""
    if not enabled():
        return None
    # Only the message's beginning is read: the text kept is cut at TEXT_LIMIT anyway, and
    # parsing a 50 MB message whole would hold several copies of it in memory at once.
    text = html.unescape(_MARKUP.sub(" ", body_text(raw[:PARSE_LIMIT])))
    # NUL cannot be stored in a Postgres text column.
    return " ".join(text.replace("\x00", " ").split())[:TEXT_LIMIT]


@sql.statements
def _insert() -> str:
    return sql.render("INSERT INTO {text} ({text.blob}, {text.text}) VALUES (%s, %s) "
                      "ON CONFLICT ({text.blob}) DO NOTHING", text=MessageText)


def record(cursor, key: str, text: str | None) -> None:
    """Keep a blob's text in the writer's transaction (once: a blob's text never changes).

    One more statement per delivery and APPEND, on Postgres only.
    """
    if text is not None:
        cursor.execute(_insert(), [key, text])


def remember(texts: Iterable[tuple[str, str]]) -> None:
    """Keep the texts of blobs stored before they were indexed (read by a search)."""
    if not enabled():
        return
    MessageText.objects.bulk_create(
        [MessageText(blob_id=key, text=text) for key, text in texts], ignore_conflicts=True)


def query(text: str) -> SearchQuery | None:
    """Return the tsquery for words typed in a search box: every word, each as a prefix.

    Only word characters reach the query, so nothing typed is read as tsquery syntax.
    """
    words = _WORD.findall(text.lower())
    if not words:
        return None
    return SearchQuery(" & ".join(f"'{w}':*" for w in words), config=CONFIG,
                       search_type="raw")


def matching_blobs(text: str) -> QuerySet[MessageText] | None:
    """Return the keys of the blobs whose text holds every word (a subquery), or None."""
    wanted = query(text)
    if wanted is None:
        return None
    # The same expression as the index (see the migration), so the GIN index serves it.
    return (MessageText.objects.annotate(document=SearchVector("text", config=CONFIG))
            .filter(document=wanted).values("blob_id"))
