"""Ledger ids (uuid_v7, credits 0016): version 7, unique, and in the order they were made, within a millisecond too."""

from __future__ import annotations

import time
import uuid

import asyncpg

from tests.integration.conftest import Credits


async def test_ids_made_one_after_another_sort_in_the_order_they_were_made(credits: Credits, db: asyncpg.Pool) -> None:
    """One round trip per id: a few tens of microseconds apart, dozens within one millisecond. With only the
    millisecond ordered (0001), about half of the neighbours came out reversed."""
    async with db.acquire() as conn:
        before_ms = int(time.time() * 1000)
        made = [uuid.UUID(str(await conn.fetchval("SELECT uuid_v7()"))) for _ in range(300)]
        after_ms = int(time.time() * 1000)
    assert {u.version for u in made} == {7}
    assert {u.variant for u in made} == {uuid.RFC_4122}
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    stamps = [int.from_bytes(u.bytes[:6], "big") for u in made]
    assert before_ms - 5 <= stamps[0] <= stamps[-1] <= after_ms + 5  # the first 48 bits: Unix time in ms
    assert len(set(stamps)) < len(stamps), "no two ids shared a millisecond: the test proves nothing"
