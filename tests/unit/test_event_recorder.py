"""EventRecorder (metering's group commit for recording): grouping, isolation of a refused call, duplicates."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from services.metering.pipeline import EventRecorder
from services.metering.repository import EventIdReused


@dataclass(frozen=True)
class _Ev:
    event_id: str
    payload: str = "a"


class _Store:
    """Plays record_events: all or nothing per call, a reused id with another payload refuses the whole call."""

    def __init__(self, delay: float = 0.01) -> None:
        self.rows: dict[str, str] = {}
        self.calls: list[int] = []
        self.delay = delay
        #: Decides, per call, whether the "database" refuses it as a whole (and with what).
        self.refuse: Any = lambda events: None

    async def record(self, events: list[Any], costs: list[int | None], versions: list[str]) -> list[Any]:
        self.calls.append(len(events))
        await asyncio.sleep(self.delay)
        error = self.refuse(events)
        if error is not None:
            raise error
        for e in events:
            if e.event_id in self.rows and self.rows[e.event_id] != e.payload:
                raise EventIdReused(e.event_id)
        out = []
        for e in events:
            new = e.event_id not in self.rows
            self.rows.setdefault(e.event_id, e.payload)
            out.append((e.event_id, new))
        return out


async def _record(recorder: EventRecorder, *events: _Ev) -> Any:
    return await recorder.record(list(events), [1] * len(events), ["v"] * len(events))


async def test_concurrent_calls_share_a_statement_and_each_gets_its_own_rows() -> None:
    store = _Store()
    recorder = EventRecorder(store.record, max_in_flight=1)
    answers = await asyncio.gather(*(_record(recorder, _Ev(f"e{i}"), _Ev(f"f{i}")) for i in range(50)))
    assert answers == [[(f"e{i}", True), (f"f{i}", True)] for i in range(50)]
    assert sum(store.calls) == 100
    assert len(store.calls) < 10, store.calls  # the first runs alone, the rest queue behind it together


async def test_a_refused_call_refuses_only_itself() -> None:
    store = _Store()
    recorder = EventRecorder(store.record, max_in_flight=1)
    await _record(recorder, _Ev("old", "a"))
    results = await asyncio.gather(
        _record(recorder, _Ev("warm-up")),
        _record(recorder, _Ev("x1")),
        _record(recorder, _Ev("old", "b"), _Ev("x2")),  # reuses "old" with another payload
        _record(recorder, _Ev("x3"), _Ev("old", "a")),  # an exact repeat: a duplicate, not an error
        return_exceptions=True,
    )
    assert results[1] == [("x1", True)]
    assert isinstance(results[2], EventIdReused)
    assert results[3] == [("x3", True), ("old", False)]
    assert "x2" not in store.rows  # all or nothing for the refused call


async def test_one_event_id_in_two_concurrent_calls_is_new_once() -> None:
    store = _Store()
    recorder = EventRecorder(store.record, max_in_flight=1)
    results = await asyncio.gather(*(_record(recorder, _Ev("same")) for _ in range(5)))
    assert sorted(r[0][1] for r in results) == [False, False, False, False, True]


async def test_a_deadlocked_group_is_recorded_call_by_call() -> None:
    store = _Store()
    store.refuse = lambda events: asyncpg.DeadlockDetectedError("deadlock detected") if len(events) > 1 else None
    recorder = EventRecorder(store.record, max_in_flight=1)
    lead = asyncio.ensure_future(_record(recorder, _Ev("lead")))
    await asyncio.sleep(0)
    group = [asyncio.ensure_future(_record(recorder, _Ev(f"g{i}"))) for i in range(3)]
    await lead
    assert [await g for g in group] == [[(f"g{i}", True)] for i in range(3)]
    assert store.calls == [1, 3, 1, 1, 1]


async def test_a_database_outage_reaches_every_caller_of_the_group() -> None:
    store = _Store()
    store.refuse = lambda events: ConnectionRefusedError("away") if events[0].event_id != "lead" else None
    recorder = EventRecorder(store.record, max_in_flight=1)
    lead = asyncio.ensure_future(_record(recorder, _Ev("lead")))
    await asyncio.sleep(0)
    group = [asyncio.ensure_future(_record(recorder, _Ev(f"o{i}"))) for i in range(3)]
    await lead
    for call in group:
        with pytest.raises(ConnectionRefusedError):
            await call
    assert store.calls == [1, 3]  # one attempt for the group; the caller's retry policy decides the rest
    assert not any(key.startswith("o") for key in store.rows)


async def test_small_calls_go_one_group_at_a_time_and_never_wait_behind_a_large_one() -> None:
    """Single events queue in their own lane: while a large batch is in the database they are recorded
    anyway, and while one small group is in the database the next one gathers behind it."""
    store = _Store()
    slow = store.record

    async def record(events: list[Any], costs: list[int | None], versions: list[str]) -> list[Any]:
        if events[0].event_id.startswith("b"):
            await asyncio.sleep(2.0)  # a big batch takes its time in the database
        return await slow(events, costs, versions)

    recorder = EventRecorder(record, small_events=4)
    large = []
    for k in range(2):  # one after the other: each takes a slot of its own
        large.append(asyncio.ensure_future(_record(recorder, *(_Ev(f"b{k}-{i}") for i in range(10)))))
        await asyncio.sleep(0.001)
    singles = [asyncio.ensure_future(_record(recorder, _Ev("s0")))]
    await asyncio.sleep(0.001)  # the first single's group is in the database now
    singles += [asyncio.ensure_future(_record(recorder, _Ev(f"s{i}"))) for i in range(1, 6)]
    done, _ = await asyncio.wait(singles, timeout=1.5)
    assert len(done) == 6 and not any(call.done() for call in large)  # both large slots are taken meanwhile
    assert [await s for s in singles] == [[(f"s{i}", True)] for i in range(6)]
    # The first single alone, the five that queued behind it together; then the two large calls.
    assert store.calls == [1, 5]
    for k, call in enumerate(large):
        assert await call == [(f"b{k}-{i}", True) for i in range(10)]
    assert store.calls == [1, 5, 10, 10]
