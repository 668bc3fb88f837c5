"""Credits service settings, from environment variables only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import Env, ServiceSettings

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class CreditsSettings:
    common: ServiceSettings
    #: Seconds between scheduler passes (period resets, grant and hold expiry); 0 disables it.
    maintenance_interval_seconds: int
    #: The largest COUPON grant the coupons service's identity may make in one Allocate (nano-USD):
    #: a stolen coupons credential can mint at most this per request. Keep it >= the coupons
    #: service's largest coupon amount (services.coupons.domain.MAX_AMOUNT_NANOS).
    coupon_grant_max_nanos: int = 10_000 * 1_000_000_000
    #: The tiers the coupons service's identity may set (coupon trials and their reverts): not
    #: enterprise by default, whose allocation is near a million dollars a month.
    coupon_tiers: tuple[str, ...] = ("trial", "starter", "professional")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CreditsSettings:
        env = Env(environ)
        return cls(
            common=ServiceSettings.from_env("credits", DEFAULT_PORT, environ),
            maintenance_interval_seconds=env.integer("CREDITS_MAINTENANCE_INTERVAL_SECONDS", 30, minimum=0),
            coupon_tiers=env.items("CREDITS_COUPON_TIERS", ("trial", "starter", "professional")),
            coupon_grant_max_nanos=env.integer(
                "CREDITS_COUPON_GRANT_MAX_NANOS", 10_000 * 1_000_000_000, minimum=0, maximum=2**62
            ),
        )
