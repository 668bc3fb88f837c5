"""The credits contract as other services use it: a user's tier and the tier catalog.

Other contexts import only this module of the credits package; it speaks
nothing but the protobuf contract.
"""

from __future__ import annotations

import logging
import time

import grpc
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from services.common.errors import Code, DomainError

log = logging.getLogger(__name__)


class CreditsClient:
    """A credits stub over a channel that carries this service's token (see grpcserver.connect)."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float, domain: str) -> None:
        self.stub = pb_grpc.CreditsServiceStub(channel)
        self.timeout = timeout_seconds
        self._domain = domain
        self._tiers: dict[str, pb.Tier] = {}
        self._tiers_loaded = 0.0

    def unavailable(self, error: grpc.aio.AioRpcError) -> DomainError:
        log.warning("credits call failed", extra={"code": error.code().name})
        return DomainError(
            "CREDITS_UNAVAILABLE",
            "the credits service could not be reached",
            code=Code.UNAVAILABLE,
            domain=self._domain,
        )

    async def tiers(self) -> dict[str, pb.Tier]:
        """The tier catalog, cached for a minute."""
        if not self._tiers or time.monotonic() - self._tiers_loaded > 60:
            try:
                response = await self.stub.CompareTiers(pb.CompareTiersRequest(), timeout=self.timeout)
            except grpc.aio.AioRpcError as error:
                raise self.unavailable(error) from None
            self._tiers = {t.tier_id: t for t in response.tiers}
            self._tiers_loaded = time.monotonic()
        return self._tiers

    async def tier_of(self, user_id: str) -> str:
        """The user's tier; a user without a credits account yet is on trial."""
        try:
            response = await self.stub.GetBalance(pb.GetBalanceRequest(user_id=user_id), timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return "trial"
            raise self.unavailable(error) from None
        return str(response.tier)
