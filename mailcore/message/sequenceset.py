"""Sets of message numbers or UIDs, as ranges: the sequence-set of RFC 9051 section 9.

The IMAP grammar reads them (mailcore.imap.lexer.parse_sequence_set) and writes them
(str()); the store and SEARCH keys use them as plain values.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SequenceSet:
    """A set of message numbers or UIDs: ranges whose ends are numbers or None for "*".

    `saved` stands for "$", the result saved by an earlier SEARCH (RFC 5182).
    """

    ranges: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """Return the most compact set holding exactly these numbers."""
        ranges: list[tuple[int, int]] = []
        for n in sorted(set(numbers)):
            if ranges and ranges[-1][1] == n - 1:
                ranges[-1] = (ranges[-1][0], n)
            else:
                ranges.append((n, n))
        return cls(tuple(ranges))

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def end(n: int | None) -> str:
            return "*" if n is None else str(n)

        return ",".join(end(a) if a == b else f"{end(a)}:{end(b)}" for a, b in self.ranges)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Return the set as sorted, merged, inclusive (low, high) ranges, "*" being largest.

        Numbers above largest are kept: "559:*" on a mailbox whose largest UID is 500 is
        500:559, which holds 500 (RFC 9051 section 6.4.9). Raise ValueError for "$".
        """
        if self.saved:
            raise ValueError("resolve the saved search result first")
        spans = sorted(tuple(sorted((largest if a is None else a, largest if b is None else b)))
                       for a, b in self.ranges)
        merged: list[tuple[int, int]] = []
        for low, high in spans:
            if merged and low <= merged[-1][1] + 1:
                if high > merged[-1][1]:
                    merged[-1] = (merged[-1][0], high)
            else:
                merged.append((low, high))
        return merged

    def exceeds(self, largest: int) -> bool:
        """Tell whether an explicit number is above largest (a bad message sequence number)."""
        return any(n is not None and n > largest for r in self.ranges for n in r)

    def contains(self, number: int, largest: int) -> bool:
        """Tell whether number is in the set, "*" being largest."""
        for a, b in self.ranges:
            low, high = largest if a is None else a, largest if b is None else b
            if min(low, high) <= number <= max(low, high):
                return True
        return False

    def iter_numbers(self, largest: int) -> Iterator[int]:
        """Yield the set's numbers from 1 to largest in order, lazily (no list for 1:*)."""
        for low, high in self.resolve(largest):
            yield from range(max(low, 1), min(high, largest) + 1)

    def select(self, uids: Sequence[int]) -> list[int]:
        """Return the members of a sorted UID list in the set, "*" being the last UID."""
        if not uids:
            return []
        picked: list[int] = []
        for low, high in self.resolve(uids[-1]):
            picked.extend(uids[bisect.bisect_left(uids, low):bisect.bisect_right(uids, high)])
        return picked
