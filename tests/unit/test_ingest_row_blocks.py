"""Row outcomes in blocks of 1,024 rows: a row keeps its first outcome whatever comes after, counts follow the
rows, and reading a block back gives the rows in order, filtered by outcome."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.row_blocks import BLOCK_ROWS, CODES, Block, block_of, first_row, unanswered


def test_rows_map_to_blocks_of_1024() -> None:
    assert [block_of(n) for n in (1, 1024, 1025, 2048, 2049)] == [0, 0, 1, 1, 2]
    assert [first_row(b) for b in (0, 1, 2)] == [1, 1025, 2049]


def test_a_row_keeps_its_first_outcome_and_the_counts_follow() -> None:
    block = Block(1)

    assert block.place(1030, CODES["created"], "c-1")
    assert block.place(1025, CODES["error"], None)
    assert not block.place(1030, CODES["matched"], "c-2")

    assert list(block.rows()) == [(1025, 3, None), (1030, 1, "c-1")]
    assert block.counts == [0, 1, 0, 1]
    assert list(block.rows(after=1025)) == [(1030, 1, "c-1")]
    assert list(block.rows(code=CODES["error"])) == [(1025, 3, None)]


def test_a_block_survives_being_stored() -> None:
    block = Block(0)
    block.place(3, 2, "c-3")
    block.place(1, 1, "c-1")

    again = Block.stored(0, bytes(block.outcomes), block.contact_ids)

    assert list(again.rows()) == list(block.rows())
    assert again.counts[1:] == [1, 1, 0] and not again.changed


answers = st.lists(
    st.tuples(st.integers(min_value=1, max_value=3 * BLOCK_ROWS), st.sampled_from([1, 2, 3])), max_size=200
)


@given(answers)
def test_however_often_answers_repeat_each_row_is_counted_once_with_its_first_outcome(
    given_answers: list[tuple[int, int]],
) -> None:
    blocks: dict[int, Block] = {}
    first: dict[int, int] = {}
    new = 0
    for row_number, code in given_answers + given_answers:
        block = blocks.setdefault(block_of(row_number), Block(block_of(row_number)))
        new += block.place(row_number, code, f"c-{row_number}")
        first.setdefault(row_number, code)

    assert new == len(first)
    found = {n: c for b in blocks.values() for n, c, _ in b.rows()}
    assert found == first
    assert sum(sum(b.counts[1:]) for b in blocks.values()) == len(first)
    assert set(unanswered(blocks, range(1, 3 * BLOCK_ROWS + 1))) == set(range(1, 3 * BLOCK_ROWS + 1)) - set(first)

