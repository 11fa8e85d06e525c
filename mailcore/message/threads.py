"""Threading: messages into conversations, by the two algorithms of RFC 5256 section 3.

Pure functions over plain values, so IMAP THREAD and the webmail's conversation view
give the same trees. A message is known by a number (a UID, or a sequence number) and
comes with its own Message-ID, the msg-ids it refers to, its base subject and whether
its subject made it a reply (mailcore.message.sortkeys), and its sent date.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ThreadMessage:
    """What threading needs of one message."""

    number: int
    message_id: str | None
    references: tuple[str, ...]  # oldest first: References, else In-Reply-To's first
    base_subject: str  # casemapped (sortkeys.casemap), so equal subjects compare equal
    reply: bool  # the subject was a reply or forward (sortkeys.base_subject)
    date: datetime  # the sent date, or the internal date when there is none


@dataclass(eq=False)
class Node:
    """A thread node: a message, or a dummy (number None) standing for a missing parent."""

    number: int | None
    children: list[Node] = field(default_factory=list)
    message: ThreadMessage | None = None
    parent: Node | None = field(default=None, repr=False)

    def numbers(self) -> list[int]:
        """Return the numbers of this node and all below it, depth first."""
        found, pending = [], [self]
        while pending:
            node = pending.pop()
            if node.number is not None:
                found.append(node.number)
            pending.extend(reversed(node.children))
        return found


def _order(node: Node) -> tuple[datetime, int]:
    """Sibling order (RFC 5256 section 3): sent date, then mailbox order; a dummy by its
    first child."""
    while node.message is None and node.children:
        node = node.children[0]
    if node.message is None:
        return datetime.min, 0
    return node.message.date, node.message.number


def ordered_subject(messages: Sequence[ThreadMessage]) -> list[Node]:
    """THREAD=ORDEREDSUBJECT: one thread per base subject, replies all children of the first.

    RFC 5256 section 3: sort by base subject then sent date; the first message of each
    subject is the parent of all the others; threads in the sent date order of their
    first message.
    """
    by_subject: dict[str, Node] = {}
    for message in sorted(messages, key=lambda m: (m.base_subject, m.date, m.number)):
        root = by_subject.get(message.base_subject)
        node = Node(message.number, message=message)
        if root is None:
            by_subject[message.base_subject] = node
        else:
            node.parent = root
            root.children.append(node)
    return sorted(by_subject.values(), key=_order)


def references(messages: Sequence[ThreadMessage]) -> list[Node]:
    """THREAD=REFERENCES (RFC 5256 section 3): by References/In-Reply-To, then by subject.

    messages come in mailbox order (a duplicate Message-ID counts for the first only).
    """
    nodes = _link(messages)
    roots = [node for node in nodes if node.parent is None]  # (2)
    roots = _prune(roots)  # (4)
    roots = _gather_subjects(roots)  # (5)
    _sort(roots)  # (6)
    return roots


def _descends_from(node: Node, ancestor: Node) -> bool:
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False


def _adopt(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _link(messages: Sequence[ThreadMessage]) -> list[Node]:
    """Steps (1)(A) and (1)(B): every message and dummy, linked child to parent."""
    by_id: dict[str, Node] = {}
    nodes: list[Node] = []

    def container(message_id: str) -> Node:
        node = by_id.get(message_id)
        if node is None:
            node = by_id[message_id] = Node(None)
            nodes.append(node)
        return node

    for message in messages:
        node = None
        if message.message_id is not None:
            found = by_id.get(message.message_id)
            if found is None or found.message is None:
                node = container(message.message_id)
        if node is None:  # no Message-ID, or a duplicate: a unique one of its own
            node = Node(None)
            nodes.append(node)
        node.number, node.message = message.number, message
        # (1)(A): each reference the parent of the next, unless already linked or a loop.
        chain = [container(ref) for ref in message.references]
        for parent, child in zip(chain, chain[1:], strict=False):
            if child.parent is None and parent is not child \
                    and not _descends_from(parent, child):
                _adopt(parent, child)
        # (1)(B): the last reference is this message's parent, whatever it had before.
        parent = chain[-1] if chain else None
        if parent is None:
            if node.parent is not None:
                node.parent.children.remove(node)
                node.parent = None
        elif parent is not node and not _descends_from(parent, node):
            _adopt(parent, node)
    return nodes


def _post_order(roots: Iterable[Node]) -> list[Node]:
    """Return every node below and including roots, children before their parent.

    Loops, not recursion: a reply chain may be thousands of messages deep.
    """
    found, pending = [], list(roots)
    while pending:
        node = pending.pop()
        found.append(node)
        pending.extend(node.children)
    found.reverse()
    return found


def _pruned(children: list[Node], parent: Node | None) -> list[Node]:
    kept: list[Node] = []
    for node in children:
        if node.message is not None:
            kept.append(node)
        elif node.children and parent is None and len(node.children) > 1:
            kept.append(node)  # a dummy at the top keeps two or more children
        else:
            kept.extend(node.children)  # none, or spliced into the dummy's place
    for node in kept:
        node.parent = parent
    return kept


def _prune(roots: list[Node]) -> list[Node]:
    """Step (4): drop childless dummies; splice other dummies' children into their place.

    A dummy at the top keeps its children unless it has only one.
    """
    for node in _post_order(roots):
        node.children = _pruned(node.children, node)
    return _pruned(roots, None)


def _subject_of(node: Node) -> tuple[str, bool]:
    """Return a thread's subject and whether its top message is a reply (step 5.B)."""
    if node.message is not None:
        return node.message.base_subject, node.message.reply
    first = node.children[0].message if node.children else None
    return (first.base_subject if first is not None else ""), False


def _gather_subjects(roots: list[Node]) -> list[Node]:
    """Step (5): merge the top-level threads that share a base subject."""
    table: dict[str, Node] = {}
    for node in roots:  # (5)(B)
        subject, reply = _subject_of(node)
        if not subject:
            continue
        held = table.get(subject)
        if held is None or (held.message is not None and (
                node.message is None or (held.message.reply and not reply))):
            table[subject] = node
    merged: list[Node] = []
    position: dict[int, int] = {}  # id(node): its index in merged (lists scan slowly)
    for node in roots:  # (5)(C)
        if node.parent is not None:
            continue  # merged already, into a dummy made for it and a later thread
        subject, reply = _subject_of(node)
        held = table.get(subject) if subject else None
        if held is None or held is node:
            if id(node) not in position:
                position[id(node)] = len(merged)
                merged.append(node)
            continue
        if held.message is None and node.message is None:
            for child in node.children:
                child.parent = held
            held.children.extend(node.children)
            node.children = []
        elif held.message is None or (reply and not held.message.reply):
            node.parent = held
            held.children.append(node)
        else:
            dummy = Node(None, children=[held, node])
            held.parent = node.parent = dummy
            table[subject] = dummy
            index = position.pop(id(held), len(merged))
            if index == len(merged):
                merged.append(dummy)
            else:
                merged[index] = dummy
            position[id(dummy)] = index
    return merged


def _sort(roots: list[Node]) -> None:
    """Step (6): children before parents, each set of siblings by sent date."""
    for node in _post_order(roots):
        node.children.sort(key=_order)
    roots.sort(key=_order)


def flatten(roots: Iterable[Node]) -> list[list[int]]:
    """Return each thread's message numbers, depth first (a conversation's reading order)."""
    return [root.numbers() for root in roots]
