"""OpenRouter service settings, from environment variables only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import Env, ServiceSettings

DEFAULT_PORT = 50054


@dataclass(frozen=True)
class OpenRouterSettings:
    common: ServiceSettings
    base_url: str
    #: The management (provisioning) key. Secret: never logged, never in repr.
    management_key: str = field(repr=False)
    #: Fernet keys, primary first. Secret.
    fernet_keys: tuple[str, ...] = field(repr=False)
    http_timeout_seconds: int
    http_retries: int
    credits_address: str
    credits_timeout_seconds: int
    #: Seconds between catalog syncs and account refreshes; 0 disables them.
    sync_interval_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpenRouterSettings:
        env = Env(environ)
        return cls(
            common=ServiceSettings.from_env("openrouter", DEFAULT_PORT, environ),
            base_url=env.text("OPENROUTER_BASE_URL", "https://openrouter.ai"),
            management_key=env.secret("OPENROUTER_MANAGEMENT_KEY"),
            # Comma- or newline-separated (a mounted file holds one key per line), primary first.
            fernet_keys=tuple(k for k in re.split(r"[,\s]+", env.secret("OPENROUTER_FERNET_KEYS")) if k),
            http_timeout_seconds=env.integer("OPENROUTER_HTTP_TIMEOUT_SECONDS", 10, minimum=1, maximum=120),
            http_retries=env.integer("OPENROUTER_HTTP_RETRIES", 3, minimum=0, maximum=10),
            credits_address=env.text("OPENROUTER_CREDITS_ADDR", "127.0.0.1:50051"),
            credits_timeout_seconds=env.integer("OPENROUTER_CREDITS_TIMEOUT_SECONDS", 5, minimum=1, maximum=60),
            sync_interval_seconds=env.integer("OPENROUTER_SYNC_INTERVAL_SECONDS", 3600, minimum=0),
        )
