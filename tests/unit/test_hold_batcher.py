"""HoldBatcher (metering's Authorize holds, sent to the ledger together): grouping, per-hold refusals, fallback."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from creditmeter.credits.v1 import credits_pb2 as cpb
from grpc.aio import AioRpcError, Metadata

from services.common.errors import Code, DomainError
from services.common.rpcstatus import status_of
from services.metering.pipeline import HoldBatcher


class _Ledger:
    """Plays the credits stub: CreateHolds (or not, like an older ledger) and CreateHold."""

    def __init__(self, batches: bool = True) -> None:
        self.batches = batches
        self.calls: list[str] = []

    def _one(self, request: cpb.CreateHoldRequest) -> cpb.CreateHoldsResult:
        if request.amount_nanos > 100:
            error = DomainError("INSUFFICIENT_CREDITS", "not enough", code=Code.FAILED_PRECONDITION)
            return cpb.CreateHoldsResult(error=status_of(error, "credits.creditmeter.dev"))
        return cpb.CreateHoldsResult(hold=cpb.CreateHoldResponse(hold_id=f"h-{request.request_id}"))

    async def CreateHolds(self, request: cpb.CreateHoldsRequest, **call: object) -> cpb.CreateHoldsResponse:
        await asyncio.sleep(0.01)
        if not self.batches:
            raise AioRpcError(grpc.StatusCode.UNIMPLEMENTED, Metadata(), Metadata(), "unknown method")
        self.calls.append(f"batch:{len(request.holds)}")
        return cpb.CreateHoldsResponse(results=[self._one(h) for h in request.holds])

    async def CreateHold(self, request: cpb.CreateHoldRequest, **call: object) -> cpb.CreateHoldResponse:
        self.calls.append("one")
        result = self._one(request)
        if result.HasField("error"):
            raise AioRpcError(grpc.StatusCode.FAILED_PRECONDITION, Metadata(), Metadata(), "not enough")
        return result.hold


def _req(i: int, amount: int = 10) -> cpb.CreateHoldRequest:
    return cpb.CreateHoldRequest(user_id=f"u{i}", amount_nanos=amount, request_id=f"r{i}")


async def test_concurrent_holds_share_calls_and_each_gets_its_own_answer() -> None:
    ledger = _Ledger()
    batcher = HoldBatcher(ledger, 5, max_in_flight=1)  # type: ignore[arg-type]
    answers = await asyncio.gather(*(batcher.hold(_req(i)) for i in range(40)))
    assert [a.hold_id for a in answers] == [f"h-r{i}" for i in range(40)]
    assert len(ledger.calls) <= 3 and sum(int(c.split(":")[1]) for c in ledger.calls) == 40


async def test_a_refused_hold_fails_only_its_caller() -> None:
    batcher = HoldBatcher(_Ledger(), 5)  # type: ignore[arg-type]
    results = await asyncio.gather(batcher.hold(_req(1)), batcher.hold(_req(2, 500)), return_exceptions=True)
    assert isinstance(results[0], cpb.CreateHoldResponse) and results[0].hold_id == "h-r1"
    assert isinstance(results[1], DomainError)
    assert (results[1].reason, results[1].code) == ("INSUFFICIENT_CREDITS", Code.FAILED_PRECONDITION)


async def test_a_ledger_without_create_holds_is_served_hold_by_hold() -> None:
    ledger = _Ledger(batches=False)
    batcher = HoldBatcher(ledger, 5)  # type: ignore[arg-type]
    answers = await asyncio.gather(*(batcher.hold(_req(i)) for i in range(3)), return_exceptions=True)
    assert [a.hold_id for a in answers if isinstance(a, cpb.CreateHoldResponse)] == ["h-r0", "h-r1", "h-r2"]
    assert ledger.calls == ["one", "one", "one"]


async def test_a_failed_call_reaches_every_caller() -> None:
    class Away(_Ledger):
        async def CreateHolds(self, request: cpb.CreateHoldsRequest, **call: object) -> cpb.CreateHoldsResponse:
            raise AioRpcError(grpc.StatusCode.UNAVAILABLE, Metadata(), Metadata(), "connection refused")

    batcher = HoldBatcher(Away(), 5)  # type: ignore[arg-type]
    for outcome in await asyncio.gather(batcher.hold(_req(1)), batcher.hold(_req(2)), return_exceptions=True):
        assert isinstance(outcome, AioRpcError) and outcome.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(AioRpcError):
        await batcher.hold(_req(3))
