"""Session fixtures: a real PostgreSQL, dev signing keys, tokens, an in-process credits server.

PostgreSQL is the one TEST_DATABASE_URL names (a server you run), else an
embedded pgserver started for this session under a temporary folder and
stopped at the end. Each suite gets its own database on it.
"""

from __future__ import annotations

import os

# pgserver runs pg_ctl as another user, so that subprocess is a real fork() (CPython cannot vfork when it
# must change the user), and grpcio >= 1.80 restarts its pollers in the forked child, which then crashes
# before exec() while this process has RPCs in flight (grpc/grpc#43055): 82 of 300 such forks failed in a
# reproduction here, one of them a CI run's pg_ctl (SIGSEGV). Nothing here relies on gRPC surviving a fork.
# Set before anything imports grpc; tests/unit/test_fork_safety.py checks it.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.auth import ensure_dev_keys, mint_token
from services.coupons.config import CouponsSettings
from services.coupons.server import create_server as create_coupons_server
from services.credits.config import CreditsSettings
from services.credits.server import RunningServer, create_server
from services.metering.config import MeteringSettings
from services.metering.server import create_server as create_metering_server
from services.openrouter.config import OpenRouterSettings
from services.openrouter.crypto import generate_key
from services.openrouter.server import create_server as create_openrouter_server
from tools.fake_openrouter import FakeOpenRouter
from tools.localdb import start_embedded

ISSUER = "creditmeter-test"
AUDIENCE = "creditmeter"


@dataclass
class Postgres:
    """A PostgreSQL server for the session; ``database(name)`` creates and returns a fresh database URL."""

    admin_url: str
    handle: Any

    async def database(self, name: str) -> str:
        # Test workers (pytest-xdist) may share one server (TEST_DATABASE_URL): each names its databases apart.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        if worker:
            name = f"{name}_{worker}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return _with_database(self.admin_url, name)


def _with_database(url: str, name: str) -> str:
    head, sep, tail = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{tail}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield Postgres(configured, None)
        return
    # Short path: the server's unix socket lives in this folder.
    folder = Path(tempfile.mkdtemp(prefix="cm-pg-"))
    handle, url = start_embedded(folder / "data", "postgres")
    try:
        yield Postgres(url, handle)
    finally:
        handle.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Keys:
    folder: Path
    signing_key: Path
    jwks: Path

    def token(self, user: str, role: str, ttl: int = 3600) -> str:
        return mint_token(self.signing_key, user, role, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl)

    def forged_token(self, user: str, role: str) -> str:
        """Same claims and key id, signed by a key the JWKS does not hold."""
        fake = self.folder / "forged" / "signing-key.pem"
        if not fake.exists():
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = other.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fake.parent.mkdir(exist_ok=True)
            fake.write_bytes(pem)
            shutil.copy(self.jwks, fake.parent / "jwks.json")
        return mint_token(fake, user, role, issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("auth")
    key, jwks = ensure_dev_keys(folder)
    return Keys(folder, key, jwks)


def credits_environ(url: str, keys: Keys, **extra: str) -> dict[str, str]:
    return {
        "CREDITS_DATABASE_URL": url,
        "CREDITS_GRPC_PORT": "0",
        "AUTH_JWKS_FILE": str(keys.jwks),
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        "CREDITS_MAINTENANCE_INTERVAL_SECONDS": "0",
        "DB_POOL_MAX": "40",
        **extra,
    }


@pytest.fixture(scope="session")
async def credits_db(postgres: Postgres) -> str:
    return await postgres.database("it_credits")


@pytest.fixture(scope="session")
async def credits_server(credits_db: str, keys: Keys) -> AsyncIterator[RunningServer]:
    running = await create_server(CreditsSettings.from_env(credits_environ(credits_db, keys)))
    yield running
    await running.stop(1)


def coupons_environ(url: str, keys: Keys, credits_port: int, **extra: str) -> dict[str, str]:
    return {
        "COUPONS_DATABASE_URL": url,
        "COUPONS_GRPC_PORT": "0",
        "COUPONS_CREDITS_ADDR": f"127.0.0.1:{credits_port}",
        "AUTH_JWKS_FILE": str(keys.jwks),
        # The coupons service mints its own service tokens with the dev key.
        "AUTH_DEV_SIGNING_KEY_FILE": str(keys.signing_key),
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        "COUPONS_RECOVERY_INTERVAL_SECONDS": "0",
        **extra,
    }


@pytest.fixture(scope="session")
async def coupons_server(credits_db: str, keys: Keys, credits_server: RunningServer) -> AsyncIterator[RunningServer]:
    running = await create_coupons_server(
        CouponsSettings.from_env(coupons_environ(credits_db, keys, credits_server.port))
    )
    yield running
    await running.stop(1)


@pytest.fixture(scope="session")
async def coupons_channel(coupons_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{coupons_server.port}") as chan:
        yield chan


@pytest.fixture(scope="session")
async def coupons_db(credits_db: str) -> AsyncIterator[asyncpg.Pool]:
    """Direct access to the coupons schema (same database as credits in the tests)."""
    pool = await asyncpg.create_pool(credits_db, min_size=1, max_size=4, server_settings={"search_path": "coupons"})
    yield pool
    await pool.close()


MANAGEMENT_KEY = "test-management-key"


@pytest.fixture(scope="session")
def fake_openrouter() -> Iterator[FakeOpenRouter]:
    fake = FakeOpenRouter(MANAGEMENT_KEY, timeout_seconds=2.0)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fernet_keys() -> list[str]:
    """Two keys; the first is primary. Tests of rotation make their own."""
    return [generate_key(), generate_key()]


def openrouter_environ(
    url: str, keys: Keys, credits_port: int, base_url: str, fernet: list[str], **extra: str
) -> dict[str, str]:
    return {
        "OPENROUTER_DATABASE_URL": url,
        "OPENROUTER_GRPC_PORT": "0",
        "OPENROUTER_BASE_URL": base_url,
        "OPENROUTER_MANAGEMENT_KEY": MANAGEMENT_KEY,
        "OPENROUTER_FERNET_KEYS": ",".join(fernet),
        "OPENROUTER_HTTP_TIMEOUT_SECONDS": "1",
        "OPENROUTER_CREDITS_ADDR": f"127.0.0.1:{credits_port}",
        "OPENROUTER_SYNC_INTERVAL_SECONDS": "0",
        "AUTH_JWKS_FILE": str(keys.jwks),
        "AUTH_DEV_SIGNING_KEY_FILE": str(keys.signing_key),
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        **extra,
    }


@pytest.fixture(scope="session")
async def openrouter_server(
    credits_db: str, keys: Keys, credits_server: RunningServer, fake_openrouter: FakeOpenRouter, fernet_keys: list[str]
) -> AsyncIterator[RunningServer]:
    environ = openrouter_environ(credits_db, keys, credits_server.port, fake_openrouter.url, fernet_keys)
    running = await create_openrouter_server(OpenRouterSettings.from_env(environ))
    yield running
    await running.stop(1)


@pytest.fixture(scope="session")
async def openrouter_channel(openrouter_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{openrouter_server.port}") as chan:
        yield chan


@pytest.fixture(scope="session")
async def openrouter_db(credits_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(credits_db, min_size=1, max_size=4, server_settings={"search_path": "openrouter"})
    yield pool
    await pool.close()


def metering_environ(url: str, keys: Keys, credits_port: int, openrouter_port: int, **extra: str) -> dict[str, str]:
    return {
        "METERING_DATABASE_URL": url,
        "METERING_GRPC_PORT": "0",
        "METERING_CREDITS_ADDR": f"127.0.0.1:{credits_port}",
        "METERING_OPENROUTER_ADDR": f"127.0.0.1:{openrouter_port}",
        "METERING_RECOVERY_INTERVAL_SECONDS": "0",
        # A loaded 2-core CI box can take more than the default 2 s to charge: tests want the settled answer.
        "METERING_TRACK_WAIT_MS": "20000",
        "AUTH_JWKS_FILE": str(keys.jwks),
        "AUTH_DEV_SIGNING_KEY_FILE": str(keys.signing_key),
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        **extra,
    }


@pytest.fixture(scope="session")
async def metering_server(
    credits_db: str, keys: Keys, credits_server: RunningServer, openrouter_server: RunningServer
) -> AsyncIterator[RunningServer]:
    environ = metering_environ(credits_db, keys, credits_server.port, openrouter_server.port)
    running = await create_metering_server(MeteringSettings.from_env(environ))
    yield running
    await running.stop(1)


@pytest.fixture(scope="session")
async def metering_channel(metering_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{metering_server.port}") as chan:
        yield chan


@pytest.fixture(scope="session")
async def metering_db(credits_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(credits_db, min_size=1, max_size=4, server_settings={"search_path": "metering"})
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def channel(credits_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{credits_server.port}") as chan:
        yield chan


@pytest.fixture(scope="session")
async def db(credits_db: str) -> AsyncIterator[asyncpg.Pool]:
    """Direct access to the credits schema, for time travel and for checking the money."""
    pool = await asyncpg.create_pool(credits_db, min_size=1, max_size=4, server_settings={"search_path": "credits"})
    yield pool
    await pool.close()


def new_user(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def request_id() -> str:
    return uuid.uuid4().hex
