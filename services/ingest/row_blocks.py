"""How row outcomes are kept (pure): 1,024 rows to a block, each row an outcome byte (0 = no outcome yet) and the
contact it resolved to. A row keeps its first outcome: placing another one for it changes nothing, which makes
counting exact however often an answer is delivered again."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from shared.events import RowOutcome

BLOCK_ROWS = 1024
NO_OUTCOME = 0
CODES: dict[RowOutcome, int] = {"created": 1, "matched": 2, "error": 3}
OUTCOMES: tuple[RowOutcome | None, ...] = (None, "created", "matched", "error")


def block_of(row_number: int) -> int:
    return (row_number - 1) // BLOCK_ROWS


def first_row(block: int) -> int:
    return block * BLOCK_ROWS + 1


@dataclass
class Block:
    """One block's rows, as stored: ``outcomes[i]`` and ``contact_ids[i]`` are row ``first_row(number) + i``
    (both as long as the last row that has an outcome), and the counts per outcome."""

    number: int
    outcomes: bytearray = field(default_factory=bytearray)
    contact_ids: list[str | None] = field(default_factory=list)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """Rows per outcome code (index 0 unused)."""
    changed: bool = False

    @classmethod
    def stored(cls, number: int, outcomes: bytes, contact_ids: list[str | None]) -> Block:
        block = cls(number, bytearray(outcomes), list(contact_ids))
        for code in block.outcomes:
            block.counts[code] += 1
        block.counts[NO_OUTCOME] = 0
        return block

    def place(self, row_number: int, code: int, contact_id: str | None) -> bool:
        """Give the row its outcome unless it has one already; True when it was new."""
        index = row_number - 1 - self.number * BLOCK_ROWS
        outcomes = self.outcomes
        if index < len(outcomes):
            if outcomes[index]:
                return False
        else:
            grow = index + 1 - len(outcomes)
            outcomes.extend(bytes(grow))
            self.contact_ids.extend([None] * grow)
        outcomes[index] = code
        self.contact_ids[index] = contact_id
        self.counts[code] += 1
        self.changed = True
        return True

    def rows(self, *, after: int = 0, code: int | None = None) -> Iterator[tuple[int, int, str | None]]:
        """(row number, outcome code, contact id) of the rows that have an outcome (only ``code``, if given),
        after row ``after``, in order."""
        base = self.number * BLOCK_ROWS + 1
        start = max(0, after + 1 - base)
        outcomes, contact_ids = self.outcomes, self.contact_ids
        for index in range(start, len(outcomes)):
            found = outcomes[index]
            if found and (code is None or found == code):
                yield base + index, found, contact_ids[index]


def is_unanswered(blocks: dict[int, Block], row_number: int) -> bool:
    """Whether the row has no outcome in ``blocks`` (a missing block: none of its rows has one)."""
    block = blocks.get(block_of(row_number))
    if block is None:
        return True
    index = row_number - 1 - block.number * BLOCK_ROWS
    return index >= len(block.outcomes) or not block.outcomes[index]


def unanswered(blocks: dict[int, Block], rows: Iterable[int]) -> Iterator[int]:
    """The row numbers among ``rows`` that have no outcome in ``blocks``."""
    return (row_number for row_number in rows if is_unanswered(blocks, row_number))


def first_unanswered(blocks: dict[int, Block]) -> int:
    """The first row number without an outcome (a blank record's number, possibly: those never get one)."""
    number = 0
    while number in blocks:
        outcomes = blocks[number].outcomes
        index = outcomes.find(NO_OUTCOME.to_bytes(1, "little"))
        if index >= 0:
            return first_row(number) + index
        if len(outcomes) < BLOCK_ROWS:
            return first_row(number) + len(outcomes)
        number += 1
    return first_row(number)
