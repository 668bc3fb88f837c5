"""Settings from environment variables: parse once, fail fast with a clear message."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

#: Where local development state lives (embedded database, dev keys).
LOCAL_DIR = Path(os.environ.get("CREDITMETER_LOCAL_DIR", Path(__file__).resolve().parents[2] / ".local"))


class ConfigError(Exception):
    """A missing or malformed environment variable; the message names it."""


class Env:
    """Typed reads of an environment mapping (``os.environ`` by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ

    def text(self, name: str, default: str | None = None) -> str:
        value = self._env.get(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(f"environment variable {name} is required")
            return default
        return value

    def optional(self, name: str) -> str | None:
        value = self._env.get(name)
        return value if value else None

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"environment variable {name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"environment variable {name} must be <= {maximum}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"environment variable {name} must be true or false, got {raw!r}")

    def items(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        raw = self._env.get(name)
        if not raw:
            return default
        return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class AuthSettings:
    """How incoming tokens are verified and outgoing calls authenticated."""

    jwks_file: str | None
    jwks_url: str | None
    issuer: str
    audiences: tuple[str, ...]
    leeway_seconds: int
    service_token: str | None
    service_token_file: str | None
    dev_signing_key_file: str | None

    @classmethod
    def from_env(cls, env: Env) -> AuthSettings:
        jwks_file = env.optional("AUTH_JWKS_FILE")
        jwks_url = env.optional("AUTH_JWKS_URL")
        dev_key = env.optional("AUTH_DEV_SIGNING_KEY_FILE")
        if not jwks_file and not jwks_url:
            # Local development: the generated dev key pair (see tools/token.py).
            jwks_file = str(LOCAL_DIR / "dev-auth" / "jwks.json")
            dev_key = dev_key or str(LOCAL_DIR / "dev-auth" / "signing-key.pem")
        return cls(
            jwks_file=jwks_file,
            jwks_url=jwks_url,
            issuer=env.text("AUTH_ISSUER", "creditmeter-dev"),
            audiences=env.items("AUTH_AUDIENCE", ("creditmeter",)),
            leeway_seconds=env.integer("AUTH_LEEWAY_SECONDS", 30, minimum=0, maximum=600),
            service_token=env.optional("SERVICE_TOKEN"),
            service_token_file=env.optional("SERVICE_TOKEN_FILE"),
            dev_signing_key_file=dev_key,
        )


@dataclass(frozen=True)
class ServiceSettings:
    """What every service reads: where it listens, its database, auth, telemetry."""

    service_name: str
    grpc_host: str
    grpc_port: int
    database_url: str
    db_schema: str
    db_pool_min: int
    db_pool_max: int
    #: Longest a statement may run before PostgreSQL cancels it (0 = no limit).
    db_statement_timeout_ms: int
    #: Longest a request waits for a free pooled connection.
    db_acquire_timeout_seconds: int
    #: After a dead connection (database restart), how long a request waits for the
    #: database to answer again before its one retry.
    db_reconnect_wait_seconds: int
    #: How often gRPC health re-checks that the database answers (0 = never).
    db_health_interval_seconds: int
    migrate_on_start: bool
    shutdown_grace_seconds: int
    log_level: str
    auth: AuthSettings

    @classmethod
    def from_env(cls, service: str, default_port: int, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = Env(environ)
        prefix = service.upper()
        database_url = env.optional(f"{prefix}_DATABASE_URL") or env.optional("DATABASE_URL")
        if not database_url:
            raise ConfigError(
                f"set {prefix}_DATABASE_URL or DATABASE_URL (`make run` sets it for the embedded database)"
            )
        return cls(
            service_name=service,
            grpc_host=env.text(f"{prefix}_GRPC_HOST", "127.0.0.1"),
            grpc_port=env.integer(f"{prefix}_GRPC_PORT", default_port, minimum=0, maximum=65535),
            database_url=database_url,
            db_schema=env.text(f"{prefix}_DB_SCHEMA", service),
            db_pool_min=env.integer("DB_POOL_MIN", 2, minimum=1),
            db_pool_max=env.integer("DB_POOL_MAX", 20, minimum=1),
            db_statement_timeout_ms=env.integer("DB_STATEMENT_TIMEOUT_MS", 30_000, minimum=0),
            db_acquire_timeout_seconds=env.integer("DB_ACQUIRE_TIMEOUT_SECONDS", 30, minimum=1),
            db_reconnect_wait_seconds=env.integer("DB_RECONNECT_WAIT_SECONDS", 10, minimum=0),
            db_health_interval_seconds=env.integer("DB_HEALTH_INTERVAL_SECONDS", 2, minimum=0),
            migrate_on_start=env.flag("MIGRATE_ON_START", True),
            shutdown_grace_seconds=env.integer("SHUTDOWN_GRACE_SECONDS", 10, minimum=0),
            log_level=env.text("LOG_LEVEL", "INFO").upper(),
            auth=AuthSettings.from_env(env),
        )
