"""Request ids and the fingerprints stored with them (AIP-155), the same in every service."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from google.protobuf.message import Message

from services.common.errors import already_exists, invalid

_M = TypeVar("_M", bound=Message)

#: The shape of every caller-chosen identifier: request ids, user ids, event ids.
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@|+=/-]{1,128}\Z")
ID_RULE = "1-128 characters of letters, digits and ._:@|+=/-"


def validate_request_id(request_id: str) -> str:
    if not request_id:
        raise invalid("MISSING_REQUEST_ID", "request_id is required for every change", field="request_id")
    if not ID_PATTERN.match(request_id):
        raise invalid("INVALID_REQUEST_ID", f"request_id must be {ID_RULE}", field="request_id")
    return request_id


def fingerprint(operation: str, **fields: object) -> str:
    """A stable digest of a request's meaning, stored with its idempotency key.

    A retry with the same key must carry the same fingerprint; anything else is
    a different request reusing the key.
    """
    canonical = json.dumps({"op": operation, **fields}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class StoredResponses:
    """AIP-155 for RPCs whose work is not a row of its own: the first response, kept by request id.

    Most changes record their request id on the row they create (a ledger
    transaction, a coupon, a redemption). Changes that create nothing of the
    kind (storing or deleting a key, a catalog sync, disabling a coupon) keep
    their first response here instead, in the service's own schema (table
    ``stored_responses``, created by each service's migration), so a retry
    answers exactly what the first call answered and a reused id with other
    parameters is refused with REQUEST_ID_REUSED.

    Request ids are scoped to the caller (the token subject): one user cannot
    replay, or learn anything from, another's responses. Only successes are
    stored; a call that failed may be retried with the same id. Two calls
    racing with one id may both do the work (every operation kept here
    converges on the same state when repeated); both answer the response
    stored first.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def once(
        self,
        *,
        caller: str,
        request_id: str,
        fingerprint: str,
        response_type: type[_M],
        run: Callable[[], Awaitable[_M]],
    ) -> _M:
        validate_request_id(request_id)
        stored = await self._replay(caller, request_id, fingerprint, response_type)
        if stored is not None:
            return stored
        response = await run()
        async with self._pool.acquire() as conn:
            inserted = await conn.fetchval(
                """
                INSERT INTO stored_responses (caller, request_id, fingerprint, response)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (caller, request_id) DO NOTHING
                RETURNING true
                """,
                caller,
                request_id,
                fingerprint,
                response.SerializeToString(deterministic=True),
            )
        if inserted:
            return response
        # A racing call with the same id stored its response first: answer that one.
        first = await self._replay(caller, request_id, fingerprint, response_type)
        assert first is not None
        return first

    async def _replay(self, caller: str, request_id: str, fingerprint: str, response_type: type[_M]) -> _M | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT fingerprint, response FROM stored_responses WHERE caller = $1 AND request_id = $2",
                caller,
                request_id,
            )
        if row is None:
            return None
        if row["fingerprint"] != fingerprint:
            raise already_exists(
                "REQUEST_ID_REUSED", "this request_id was already used for a different request", request_id=request_id
            )
        replayed: _M = response_type()
        replayed.ParseFromString(bytes(row["response"]))
        return replayed
