"""Coupons service settings, from environment variables only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import Env, ServiceSettings

DEFAULT_PORT = 50053


@dataclass(frozen=True)
class CouponsSettings:
    common: ServiceSettings
    #: host:port of the credits service's gRPC endpoint.
    credits_address: str
    credits_timeout_seconds: int
    #: Refused validations/redemptions a user may make per window before TOO_MANY_ATTEMPTS.
    max_failed_attempts: int
    #: Refused attempts per client address (as the gateway reports it) per window; one office NAT shares it.
    max_failed_attempts_per_address: int
    attempt_window_seconds: int
    #: Longest wait between retries of a failing trial revert.
    revert_max_delay_seconds: int
    #: Seconds between recovery passes (pending redemptions, ended trials); 0 disables them.
    recovery_interval_seconds: int
    #: Create WELCOME10 and FREEMONTH on an empty database (make run sets it).
    dev_seed: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CouponsSettings:
        env = Env(environ)
        return cls(
            common=ServiceSettings.from_env("coupons", DEFAULT_PORT, environ),
            credits_address=env.text("COUPONS_CREDITS_ADDR", "127.0.0.1:50051"),
            credits_timeout_seconds=env.integer("COUPONS_CREDITS_TIMEOUT_SECONDS", 5, minimum=1, maximum=60),
            max_failed_attempts=env.integer("COUPONS_MAX_FAILED_ATTEMPTS", 10, minimum=1),
            max_failed_attempts_per_address=env.integer("COUPONS_MAX_FAILED_ATTEMPTS_PER_ADDRESS", 50, minimum=1),
            attempt_window_seconds=env.integer("COUPONS_ATTEMPT_WINDOW_SECONDS", 600, minimum=1),
            revert_max_delay_seconds=env.integer("COUPONS_REVERT_MAX_DELAY_SECONDS", 3600, minimum=1),
            recovery_interval_seconds=env.integer("COUPONS_RECOVERY_INTERVAL_SECONDS", 30, minimum=0),
            dev_seed=env.flag("COUPONS_DEV_SEED", False),
        )
