"""Replay's merge of a symbol's trades and books by receive time, a batch at a time, against
heapq.merge row by row."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from v13.sources.replay import merge_received


@dataclass(frozen=True)
class Row:
    recv_ts_ms: int
    tag: tuple[str, int]


def stream(rng: random.Random, name: str, step_back: bool) -> list[list[Row]]:
    """Batches of rows with rising receive times, many ties (within and across the two
    streams); with ``step_back``, the clock goes back once somewhere."""
    t, rows = 0, []
    for i in range(rng.randint(0, 400)):
        t += rng.choice([0, 0, 1, 2, 5])
        if step_back and i == 150:
            t -= 40
        rows.append(Row(t, (name, i)))
    batches, i = [], 0
    while i < len(rows):
        n = rng.randint(1, 60)
        batches.append(rows[i : i + n])
        i += n
    return batches


def flat(batches: list[list[Row]]) -> Iterator[Row]:
    return (row for batch in batches for row in batch)


@pytest.mark.parametrize("step_back", [False, True], ids=["rising", "clock-steps-back"])
def test_the_batch_merge_gives_heapq_merges_order(step_back: bool) -> None:
    rng = random.Random(5)
    for _ in range(300):
        a, b = stream(rng, "a", step_back and rng.random() < 0.5), stream(rng, "b", step_back)
        expected = list(heapq.merge(flat(a), flat(b), key=lambda r: r.recv_ts_ms))
        assert list(merge_received(iter(a), iter(b))) == expected  # type: ignore[arg-type]
