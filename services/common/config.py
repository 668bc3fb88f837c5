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

    def secret(self, name: str) -> str:
        """A secret from the file ``<name>_FILE`` names (a mounted Secret, preferred) or from ``<name>``.

        Files keep secrets out of the process environment, which child
        processes inherit and ``/proc/<pid>/environ`` shows to the same user.
        """
        path = self._env.get(f"{name}_FILE")
        if path:
            try:
                value = Path(path).read_text().strip()
            except OSError as error:
                raise ConfigError(f"{name}_FILE names {path!r}, which cannot be read ({error.strerror})") from None
            if not value:
                raise ConfigError(f"{name}_FILE names an empty file")
            return value
        return self.text(name)

    def optional_secret(self, name: str) -> str | None:
        """Like :meth:`secret`, but None when neither ``<name>_FILE`` nor ``<name>`` is set."""
        if self._env.get(f"{name}_FILE") or self._env.get(name):
            return self.secret(name)
        return None

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

    def integers(self, name: str, default: tuple[int, ...], *, minimum: int = 0) -> tuple[int, ...]:
        """A comma-separated list of exactly as many integers as ``default`` has, each >= ``minimum``."""
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            values = tuple(int(part) for part in raw.split(","))
        except ValueError:
            raise ConfigError(
                f"environment variable {name} must be {len(default)} comma-separated integers, got {raw!r}"
            ) from None
        if len(values) != len(default) or min(values) < minimum:
            raise ConfigError(
                f"environment variable {name} must be {len(default)} comma-separated integers >= {minimum}, got {raw!r}"
            )
        return values

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
    #: Clock skew allowed on exp and nbf; the gateway renders the same value (tools/gateway.py).
    leeway_seconds: int
    service_token_file: str | None
    dev_signing_key_file: str | None
    #: Verified tokens kept (LRU, never past their exp); 0 turns the cache off.
    token_cache_size: int = 10_000
    #: How long fetched JWKS keys are used before a background refresh.
    jwks_lifespan_seconds: int = 300
    #: At most one JWKS fetch per this many seconds when tokens name an unknown key id.
    jwks_min_refresh_seconds: int = 10
    #: OAuth2 client credentials of this service at the identity provider (Keycloak's token endpoint).
    token_url: str | None = None
    client_id: str | None = None
    client_secret_file: str | None = None

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
            service_token_file=env.optional("SERVICE_TOKEN_FILE"),
            dev_signing_key_file=dev_key,
            token_cache_size=env.integer("AUTH_TOKEN_CACHE_SIZE", 10_000, minimum=0, maximum=1_000_000),
            jwks_lifespan_seconds=env.integer("AUTH_JWKS_LIFESPAN_SECONDS", 300, minimum=1, maximum=86_400),
            jwks_min_refresh_seconds=env.integer("AUTH_JWKS_MIN_REFRESH_SECONDS", 10, minimum=0, maximum=3600),
            token_url=env.optional("AUTH_TOKEN_URL"),
            client_id=env.optional("AUTH_CLIENT_ID"),
            client_secret_file=env.optional("AUTH_CLIENT_SECRET_FILE"),
        )


@dataclass(frozen=True)
class TlsSettings:
    """TLS for gRPC inside the cluster: this service's certificate and the CA it trusts.

    With a CA configured the server requires client certificates (mTLS) and
    outgoing channels present this service's certificate. All paths name
    files (mounted Kubernetes Secrets); no key material passes through the
    environment.
    """

    cert_file: str | None
    key_file: str | None
    ca_file: str | None
    #: The name outgoing channels expect in the peer certificate (override for tests and IPs).
    server_name_override: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file and self.key_file)

    @classmethod
    def from_env(cls, env: Env) -> TlsSettings:
        cert = env.optional("GRPC_TLS_CERT_FILE")
        key = env.optional("GRPC_TLS_KEY_FILE")
        ca = env.optional("GRPC_TLS_CA_FILE")
        if bool(cert) != bool(key):
            raise ConfigError("set both GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE, or neither")
        if ca and not cert:
            raise ConfigError("GRPC_TLS_CA_FILE needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE")
        for name, value in (("GRPC_TLS_CERT_FILE", cert), ("GRPC_TLS_KEY_FILE", key), ("GRPC_TLS_CA_FILE", ca)):
            if value and not Path(value).is_file():
                raise ConfigError(f"{name} names {value!r}, which is not a readable file")
        return cls(cert, key, ca, env.optional("GRPC_TLS_SERVER_NAME"))


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
    #: Python's collector after start-up (gc.set_threshold): see services/common/runner.py, settle_heap.
    gc_thresholds: tuple[int, int, int] = (50_000, 20, 10)
    tls: TlsSettings = TlsSettings(None, None, None)
    #: A plaintext port serving only gRPC health (kubelet probes cannot do mTLS); 0: none.
    health_port: int = 0

    @classmethod
    def from_env(cls, service: str, default_port: int, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = Env(environ)
        prefix = service.upper()
        # The URL may hold a password: deploy/ mounts it as a file (<PREFIX>_DATABASE_URL_FILE).
        database_url = env.optional_secret(f"{prefix}_DATABASE_URL") or env.optional_secret("DATABASE_URL")
        if not database_url:
            raise ConfigError(
                f"set {prefix}_DATABASE_URL or DATABASE_URL (`make run` sets it for the embedded database)"
            )
        gc_young, gc_middle, gc_old = env.integers("GC_THRESHOLDS", (50_000, 20, 10))
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
            gc_thresholds=(gc_young, gc_middle, gc_old),
            tls=TlsSettings.from_env(env),
            health_port=env.integer(f"{prefix}_HEALTH_PORT", 0, minimum=0, maximum=65535),
        )
