"""Metering service settings, from environment variables only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import Env, ServiceSettings

DEFAULT_PORT = 50052


@dataclass(frozen=True)
class MeteringSettings:
    common: ServiceSettings
    credits_address: str
    openrouter_address: str
    call_timeout_seconds: int
    #: Seconds between recovery passes over recorded-but-uncharged events; 0 disables them.
    recovery_interval_seconds: int
    #: How long a track answer waits for the charge before it says PENDING (within the caller's deadline).
    track_wait_seconds: float
    #: Failed attempts (refusals that are not transient) after which an event is parked.
    max_attempts: int
    #: Longest wait between two attempts of one event.
    max_backoff_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MeteringSettings:
        env = Env(environ)
        return cls(
            common=ServiceSettings.from_env("metering", DEFAULT_PORT, environ),
            credits_address=env.text("METERING_CREDITS_ADDR", "127.0.0.1:50051"),
            openrouter_address=env.text("METERING_OPENROUTER_ADDR", "127.0.0.1:50054"),
            call_timeout_seconds=env.integer("METERING_CALL_TIMEOUT_SECONDS", 10, minimum=1, maximum=120),
            recovery_interval_seconds=env.integer("METERING_RECOVERY_INTERVAL_SECONDS", 5, minimum=0),
            track_wait_seconds=env.integer("METERING_TRACK_WAIT_MS", 2000, minimum=0, maximum=60_000) / 1000,
            max_attempts=env.integer("METERING_MAX_ATTEMPTS", 5, minimum=1, maximum=100),
            max_backoff_seconds=env.integer("METERING_MAX_BACKOFF_SECONDS", 20, minimum=1, maximum=3600),
        )
