"""Shared library: settings parsing, migrations naming, token verification rules."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from services.common.auth import AuthError, Forbidden, JwtVerifier, ensure_dev_keys, mint_token
from services.common.config import AuthSettings, ConfigError, Env, ServiceSettings
from services.common.db import _migrations
from services.common.runner import settle_heap


def test_settings_fail_fast_with_the_variable_named() -> None:
    with pytest.raises(ConfigError, match="CREDITS_DATABASE_URL or DATABASE_URL"):
        ServiceSettings.from_env("credits", 50051, {})
    with pytest.raises(ConfigError, match="CREDITS_GRPC_PORT must be an integer"):
        ServiceSettings.from_env("credits", 50051, {"DATABASE_URL": "postgresql://x", "CREDITS_GRPC_PORT": "http"})
    with pytest.raises(ConfigError, match="MIGRATE_ON_START must be true or false"):
        ServiceSettings.from_env("credits", 50051, {"DATABASE_URL": "postgresql://x", "MIGRATE_ON_START": "maybe"})


def test_database_timeouts_have_defaults_and_refuse_bad_values() -> None:
    base = {"DATABASE_URL": "postgresql://x"}
    settings = ServiceSettings.from_env("credits", 50051, base)
    assert (settings.db_statement_timeout_ms, settings.db_acquire_timeout_seconds) == (30_000, 30)
    assert (settings.db_reconnect_wait_seconds, settings.db_health_interval_seconds) == (10, 2)
    tuned = ServiceSettings.from_env("credits", 50051, {**base, "DB_STATEMENT_TIMEOUT_MS": "0"})
    assert tuned.db_statement_timeout_ms == 0
    with pytest.raises(ConfigError, match="DB_STATEMENT_TIMEOUT_MS"):
        ServiceSettings.from_env("credits", 50051, {**base, "DB_STATEMENT_TIMEOUT_MS": "5s"})
    with pytest.raises(ConfigError, match="DB_ACQUIRE_TIMEOUT_SECONDS"):
        ServiceSettings.from_env("credits", 50051, {**base, "DB_ACQUIRE_TIMEOUT_SECONDS": "0"})


def test_collector_thresholds_have_a_default_and_refuse_bad_values() -> None:
    base = {"DATABASE_URL": "postgresql://x"}
    assert ServiceSettings.from_env("credits", 50051, base).gc_thresholds == (50_000, 20, 10)
    tuned = ServiceSettings.from_env("credits", 50051, {**base, "GC_THRESHOLDS": "700, 10, 10"})
    assert tuned.gc_thresholds == (700, 10, 10)
    for bad in ("700,10", "700,10,10,10", "a,b,c", "-1,10,10"):
        with pytest.raises(ConfigError, match="GC_THRESHOLDS"):
            ServiceSettings.from_env("credits", 50051, {**base, "GC_THRESHOLDS": bad})


def test_settle_heap_freezes_what_is_alive_and_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    survivor = [object() for _ in range(10)]  # alive now: must end up frozen, out of the collector's reach
    try:
        settle_heap((12_345, 7, 3))
        assert gc.get_threshold() == (12_345, 7, 3)
        assert gc.get_freeze_count() >= len(survivor)
        assert not any(item is survivor for item in gc.get_objects())
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_per_service_database_url_overrides_the_shared_one() -> None:
    settings = ServiceSettings.from_env(
        "credits",
        50051,
        {"DATABASE_URL": "postgresql://shared", "CREDITS_DATABASE_URL": "postgresql://own"},
    )
    assert settings.database_url == "postgresql://own" and settings.db_schema == "credits"


def test_migrations_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0003_c.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="without gaps"):
        _migrations(tmp_path)


def test_every_shipped_migration_folder_is_well_formed() -> None:
    root = Path(__file__).resolve().parents[2] / "services"
    folders = [p for p in root.glob("*/migrations") if p.is_dir()]
    assert folders
    for folder in folders:
        assert _migrations(folder)


def _verifier(tmp_path: Path, **overrides: str) -> tuple[JwtVerifier, Path]:
    key, jwks = ensure_dev_keys(tmp_path)
    env = {"AUTH_JWKS_FILE": str(jwks), "AUTH_ISSUER": "iss", "AUTH_AUDIENCE": "aud", **overrides}
    return JwtVerifier(AuthSettings.from_env(Env(env))), key


async def test_roles_come_from_realm_access(tmp_path: Path) -> None:
    verifier, key = _verifier(tmp_path)
    who = await verifier.verify(mint_token(key, "alice", "admin", issuer="iss", audience="aud"))
    assert who.subject == "alice" and who.is_admin and who.role == "admin"
    assert who.may_act_for("bob")
    user = await verifier.verify(mint_token(key, "bob", "user", issuer="iss", audience="aud"))
    assert not user.may_act_for("alice") and user.may_act_for("bob")


async def test_wrong_issuer_and_expiry_are_refused(tmp_path: Path) -> None:
    verifier, key = _verifier(tmp_path)
    with pytest.raises(AuthError) as error:
        await verifier.verify(mint_token(key, "a", "user", issuer="other", audience="aud"))
    assert error.value.reason == "TOKEN_INVALID"
    with pytest.raises(AuthError) as error:
        await verifier.verify(mint_token(key, "a", "user", issuer="iss", audience="aud", ttl_seconds=-300))
    assert error.value.reason == "TOKEN_EXPIRED"
    with pytest.raises(Forbidden):
        await verifier.verify(
            mint_token(
                key,
                "a",
                "user",
                issuer="iss",
                audience="aud",
                extra_claims={"realm_access": {"roles": []}},
            )
        )


def test_dev_keys_are_created_once_and_private(tmp_path: Path) -> None:
    key, jwks = ensure_dev_keys(tmp_path)
    first = key.read_bytes()
    ensure_dev_keys(tmp_path)
    assert key.read_bytes() == first
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert "PRIVATE" not in jwks.read_text()


def test_secrets_come_from_files_first(tmp_path: Path) -> None:
    from services.common.config import ConfigError, Env

    secret = tmp_path / "key"
    secret.write_text("from-file\n")
    env = Env({"KEY_FILE": str(secret), "KEY": "from-env"})
    assert env.secret("KEY") == "from-file"
    assert Env({"KEY": "from-env"}).secret("KEY") == "from-env"
    assert Env({}).optional_secret("KEY") is None
    secret.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        env.secret("KEY")
    with pytest.raises(ConfigError, match="cannot be read"):
        Env({"KEY_FILE": str(tmp_path / "missing")}).secret("KEY")
    with pytest.raises(ConfigError, match="KEY is required"):
        Env({}).secret("KEY")


_SPAN_PROBE = """
from opentelemetry import trace
from services.common.telemetry import setup_tracing
setup_tracing("probe")
span = trace.get_tracer("probe").start_span("probe")
print(span.is_recording(), span.get_span_context().is_valid)
"""


@pytest.mark.parametrize(("endpoint", "recording"), [("", "False"), ("http://127.0.0.1:1", "True")])
def test_spans_are_recorded_only_when_an_exporter_receives_them(endpoint: str, recording: str) -> None:
    """Without OTEL_EXPORTER_OTLP_ENDPOINT nothing records spans (a cost on every RPC for nothing), yet every
    span still has valid ids, so log lines and the traceparent passed on still correlate."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = f"{root}:{root / 'gen' / 'python'}"
    done = subprocess.run(
        [sys.executable, "-c", _SPAN_PROBE], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == [recording, "True"]


def test_service_kinds_convert_both_ways_and_unknown_values_have_no_name() -> None:
    from creditmeter.common.v1 import service_kind_pb2 as skpb

    from services.common import service_kind

    for name in service_kind.NAMES:
        assert service_kind.name_of(service_kind.value_of(name)) == name
    assert service_kind.name_of(skpb.SERVICE_KIND_LLM) == "LLM"
    assert [service_kind.name_of(v) for v in (0, -1, max(skpb.ServiceKind.values()) + 1)] == [None, None, None]
