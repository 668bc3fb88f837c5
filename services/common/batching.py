"""Group commit for any per-request database step: calls made while earlier groups run go together.

The services use one pattern in several places (Deduct, balance reads, event
recording, holds, authorizations): a request's step is queued; while at most
``max_in_flight`` groups are running, newly queued steps wait and then run
together as ONE group — one statement, one commit, one round trip — so the
busier the service, the more each group carries, and a lone step runs at once
(no added latency). A grouper may also ``linger``: while it is busy (a group
has just finished and more steps are queued), the next group waits that long
to fill before it goes, so that a group's fixed cost (a round trip, a commit,
an RPC) spreads over more steps; a step that finds it idle still runs at once.
:class:`Grouper` is that pattern, for steps whose group runner returns one
result (or one exception) per step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Grouper(Generic[T, R]):
    """Runs queued steps in groups of at most ``max_group`` (counted by ``weight``, 1 per step by default;
    a step heavier than that still runs, alone), at most ``max_in_flight`` groups at a time.

    ``run`` gets the steps of a group and returns one outcome per step, in order; if it raises one of
    ``alone_on`` (a group the database refused as a whole: a deadlock, a serialization failure), each
    step of the group runs again on its own; any other exception reaches every step of the group.
    Steps that share any of their ``keys`` never share a group (the later waits for the next). With
    ``order``, a group reaches ``run`` sorted by it (the fixed lock order that keeps concurrent groups, and
    replicas, from deadlocking each other); outcomes still reach the step they belong to. With
    ``linger``, a group queued behind another waits that many seconds for more steps, unless ``fill`` steps
    are already queued.
    """

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[list[R | BaseException]]],
        *,
        keys: Callable[[T], Iterable[Hashable]] | None = None,
        weight: Callable[[T], int] | None = None,
        order: Callable[[T], Any] | None = None,
        max_group: int = 256,
        max_in_flight: int = 2,
        alone_on: tuple[type[BaseException], ...] = (),
        linger: float = 0.0,
        fill: int = 64,
    ) -> None:
        self._run = run
        self._keys = keys
        self._weight = weight
        self._order = order
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._alone_on = alone_on
        self._linger = linger
        self._fill = fill
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0

    async def submit(self, step: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((step, future))
        if self._running < self._max_in_flight:
            self._running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        group: list[tuple[T, asyncio.Future[R]]] = []
        taken: set[Hashable] = set()
        total = 0
        rest: list[tuple[T, asyncio.Future[R]]] = []
        for step, future in self._queue:
            if future.done():
                continue  # its caller went away
            mine = set(self._keys(step)) if self._keys is not None else set()
            weight = self._weight(step) if self._weight is not None else 1
            if (not group or total + weight <= self._max_group) and taken.isdisjoint(mine):
                group.append((step, future))
                taken |= mine
                total += weight
            else:
                rest.append((step, future))
        self._queue = rest
        if self._order is not None:
            order = self._order
            group.sort(key=lambda item: order(item[0]))
        return group

    async def _drain(self) -> None:
        try:
            busy = False
            while self._queue:
                if busy and self._linger > 0 and len(self._queue) < self._fill:
                    # Still busy after a group: let the next one gather a little longer (its fixed cost
                    # spreads over more steps). A step that finds the grouper idle runs at once.
                    await asyncio.sleep(self._linger)
                group = self._take()
                if group:
                    await self._group(group)
                busy = True
        except asyncio.CancelledError:
            # The service is stopping: nothing will run the steps still queued, so their callers must not
            # wait for them (a lingering group is the likeliest to be caught here).
            for _, future in self._queue:
                future.cancel()
            self._queue = []
            raise
        finally:
            self._running -= 1

    async def _group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._run([step for step, _ in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"a group of {len(group)} steps got {len(outcomes)} outcomes")
        except BaseException as error:
            if isinstance(error, self._alone_on) and len(group) > 1:
                for one in group:
                    await self._group([one])
                return
            # The database is away, a timeout, cancellation, or a lone step refused: every caller learns.
            for _, future in group:
                if not future.done():
                    future.set_exception(error if isinstance(error, Exception) else asyncio.CancelledError())
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
