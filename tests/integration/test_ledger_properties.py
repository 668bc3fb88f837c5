"""Property test: random sequences of ledger operations keep every invariant.

Each example opens a fresh account and applies a random sequence of
allocations, deductions, holds, captures, releases, refunds and retries. A
plain model predicts which calls succeed and the resulting balance and held
amount; after the sequence, every invariant `make verify` checks must hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2 as pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import new_user, request_id
from tests.integration.conftest import USD, Credits, assert_ledger_ok

amounts = st.integers(min_value=1, max_value=3 * USD)
operations = st.one_of(
    st.tuples(st.just("allocate"), amounts),
    st.tuples(st.just("deduct"), amounts),
    st.tuples(st.just("hold"), amounts),
    st.tuples(st.just("capture"), st.integers(0, 20), st.integers(0, 110)),
    st.tuples(st.just("release"), st.integers(0, 20)),
    st.tuples(st.just("refund"), st.integers(0, 20), amounts),
    st.tuples(st.just("retry")),
)


@dataclass
class Model:
    balance: int = USD  # the trial allocation a new account opens with
    held: int = 0
    holds: list[list[Any]] = field(default_factory=list)  # [hold_id, amount, active]
    charges: list[list[Any]] = field(default_factory=list)  # [transaction_id, amount, refunded]

    @property
    def available(self) -> int:
        return self.balance - self.held


async def _attempt(credits: Credits, method: str, request: Any, admin: bool = False) -> Any | None:
    try:
        if admin:
            return await credits.as_admin(method, request)
        return await credits.as_service(method, request)
    except grpc.aio.AioRpcError as error:
        assert error.code() in (grpc.StatusCode.FAILED_PRECONDITION,), (
            method,
            error.code(),
            error.details(),
        )
        return None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=18))
async def test_random_operation_sequences_keep_the_ledger_consistent(
    credits: Credits, db: asyncpg.Pool, ops: list[tuple[Any, ...]]
) -> None:
    user = new_user("prop")
    model = Model()
    await credits.call("GetBalance", pb.GetBalanceRequest(), credits.keys.token(user, "user"))
    last: tuple[str, Any, bool] | None = None
    for op in ops:
        kind = op[0]
        if kind == "allocate":
            request = pb.AllocateRequest(user_id=user, amount_nanos=op[1], reason="p", request_id=request_id())
            assert await _attempt(credits, "Allocate", request, admin=True) is not None
            model.balance += op[1]
            last = ("Allocate", request, True)
        elif kind == "deduct":
            request = pb.DeductRequest(user_id=user, amount_nanos=op[1], reason="p", request_id=request_id())
            result = await _attempt(credits, "Deduct", request)
            assert (result is not None) == (op[1] <= model.available)
            if result is not None:
                model.balance -= op[1]
                model.charges.append([result.transaction.transaction_id, op[1], 0])
                last = ("Deduct", request, False)
        elif kind == "hold":
            request = pb.CreateHoldRequest(user_id=user, amount_nanos=op[1], ttl_seconds=600, request_id=request_id())
            result = await _attempt(credits, "CreateHold", request)
            assert (result is not None) == (op[1] <= model.available)
            if result is not None:
                model.held += op[1]
                model.holds.append([result.hold_id, op[1], True])
                last = ("CreateHold", request, False)
        elif kind == "capture" and model.holds:
            hold = model.holds[op[1] % len(model.holds)]
            amount = hold[1] * op[2] // 100
            request = pb.CaptureHoldRequest(hold_id=hold[0], amount_nanos=amount, request_id=request_id())
            result = await _attempt(credits, "CaptureHold", request)
            assert (result is not None) == (hold[2] and amount <= hold[1])
            if result is not None:
                model.held -= hold[1]
                model.balance -= amount
                hold[2] = False
                if amount:
                    model.charges.append([result.transaction.transaction_id, amount, 0])
                last = ("CaptureHold", request, False)
        elif kind == "release" and model.holds:
            hold = model.holds[op[1] % len(model.holds)]
            request = pb.ReleaseHoldRequest(hold_id=hold[0], request_id=request_id())
            result = await _attempt(credits, "ReleaseHold", request)
            assert (result is not None) == hold[2]
            if result is not None:
                model.held -= hold[1]
                hold[2] = False
                last = ("ReleaseHold", request, False)
        elif kind == "refund" and model.charges:
            charge = model.charges[op[1] % len(model.charges)]
            request = pb.RefundRequest(
                user_id=user,
                transaction_id=charge[0],
                amount_nanos=op[2],
                reason="p",
                request_id=request_id(),
            )
            result = await _attempt(credits, "Refund", request, admin=True)
            assert (result is not None) == (charge[2] + op[2] <= charge[1])
            if result is not None:
                charge[2] += op[2]
                model.balance += op[2]
                last = ("Refund", request, True)
        elif kind == "retry" and last is not None:
            method, request, admin = last
            assert await _attempt(credits, method, request, admin=admin) is not None
        balance = await credits.balance(user)
        assert (balance.balance_nanos, balance.held_nanos) == (model.balance, model.held), op
        assert balance.available_nanos >= 0
    await assert_ledger_ok(db)
