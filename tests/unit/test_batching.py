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


async def _arrivals(grouper: Grouper[tuple[str, int], int]) -> list[int]:
    """A lead step; a second while the lead's group runs; a third as soon as the lead has its answer."""
    lead = asyncio.ensure_future(grouper.submit(("lead", 0)))
    await asyncio.sleep(0.002)  # the lead's group is running (it takes 10 ms)
    second = asyncio.ensure_future(grouper.submit(("second", 1)))
    first = await lead
    # Without a linger the second step's group has already started by now; with one it is still gathering.
    third = asyncio.ensure_future(grouper.submit(("third", 2)))
    return [first, await second, await third]


async def test_a_busy_grouper_lets_the_next_group_gather_for_its_linger() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, max_in_flight=1, linger=0.2)
    assert await _arrivals(grouper) == [0, 2, 4]
    assert [[name for name, _ in group] for group in db.groups] == [["lead"], ["second", "third"]]

    db_now = _Db()  # without a linger, the second step goes as soon as the lead's group is over
    assert await _arrivals(Grouper(db_now.run, max_in_flight=1)) == [0, 2, 4]
    assert [[name for name, _ in group] for group in db_now.groups] == [["lead"], ["second"], ["third"]]


async def test_an_idle_grouper_runs_a_lone_step_at_once_however_long_its_linger() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, max_in_flight=1, linger=30)
    assert await asyncio.wait_for(grouper.submit(("alone", 3)), timeout=1) == 6
    # And again once idle: the linger applies only to a group queued behind another.
    assert await asyncio.wait_for(grouper.submit(("again", 4)), timeout=1) == 8


async def test_a_lingering_grouper_goes_at_once_when_enough_steps_are_queued() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, max_in_flight=1, linger=30, fill=3)
    lead = asyncio.ensure_future(grouper.submit(("lead", 0)))
    await asyncio.sleep(0.002)
    rest = [asyncio.ensure_future(grouper.submit((f"s{i}", i))) for i in range(1, 4)]
    assert await asyncio.wait_for(asyncio.gather(lead, *rest), timeout=1) == [0, 2, 4, 6]
    assert [len(group) for group in db.groups] == [1, 3]


async def test_steps_queued_behind_a_cancelled_grouper_are_cancelled_not_left_waiting() -> None:
    db = _Db()
    grouper: Grouper[tuple[str, int], int] = Grouper(db.run, max_in_flight=1, linger=30)
    lead = asyncio.ensure_future(grouper.submit(("lead", 0)))
    await asyncio.sleep(0.002)
    second = asyncio.ensure_future(grouper.submit(("second", 1)))
    assert await lead == 0  # the grouper now lingers for 30 s before the second step's group
    (drain,) = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Grouper._drain"]  # type: ignore[union-attr]
    drain.cancel()  # what stopping the service's event loop does
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(second, timeout=1)
