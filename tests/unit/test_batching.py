"""Grouper (services/common/batching.py): steps queued while a group runs go together, each keeps its outcome."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.common.batching import Grouper


class _Db:
    def __init__(self) -> None:
        self.groups: list[list[tuple[str, int]]] = []

    async def run(self, steps: list[tuple[str, int]]) -> list[int | BaseException]:
        self.groups.append(list(steps))
        await asyncio.sleep(0.01)
        if len(steps) > 1 and any(n < 0 for _, n in steps):
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        if any(n == 999 for _, n in steps):
            raise ConnectionResetError("database away")
        return [ValueError(f"no {n}") if n == 13 else n * 2 for _, n in steps]


async def test_queued_steps_share_groups_and_keep_their_own_outcomes() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, max_in_flight=1)
    results = await asyncio.gather(*(grouper.submit((f"k{i}", i)) for i in range(30)), return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 13] == [i * 2 for i in range(30) if i != 13]
    assert isinstance(results[13], ValueError)  # one step's own failure reaches only its caller
    assert len(db.groups) < 5  # one statement for many steps


async def test_steps_with_one_key_never_share_a_group() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, keys=lambda s: [s[0]], max_in_flight=1)
    await asyncio.gather(*(grouper.submit(("same", i)) for i in range(4)), grouper.submit(("other", 7)))
    for group in db.groups:
        assert len({k for k, _ in group}) == len(group)


async def test_a_group_refused_whole_runs_step_by_step() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, max_in_flight=1, alone_on=(asyncpg.DeadlockDetectedError,))
    lead = asyncio.ensure_future(grouper.submit(("lead", 1)))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(grouper.submit((f"s{i}", n))) for i, n in enumerate([2, -3, 4])]
    assert await lead == 2
    assert [await r for r in rest] == [4, -6, 8]
    assert [len(g) for g in db.groups] == [1, 3, 1, 1, 1]


async def test_a_failure_of_the_whole_group_reaches_every_step() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, max_in_flight=1)
    lead = asyncio.ensure_future(grouper.submit(("lead", 1)))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(grouper.submit((f"s{i}", n))) for i, n in enumerate([2, 999, 4])]
    assert await lead == 2
    for step in rest:
        with pytest.raises(ConnectionResetError):
            await step


async def test_a_group_reaches_its_runner_in_the_given_order_and_outcomes_reach_their_steps() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, order=lambda s: s[0], max_in_flight=1)
    names = ["d", "b", "e", "a", "c", "b"]
    results = await asyncio.gather(*(grouper.submit((name, i)) for i, name in enumerate(names)))
    assert results == [i * 2 for i in range(len(names))]
    for group in db.groups:
        assert [name for name, _ in group] == sorted(name for name, _ in group)
    assert [n for name, n in db.groups[-1] if name == "b"] == [1, 5]  # arrival order kept within a key
