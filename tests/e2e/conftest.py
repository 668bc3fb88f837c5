"""Starts the whole stack exactly as `make run` does (tools.stack) on free ports, against the test PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.common.auth import ensure_dev_keys, mint_token
from tests.conftest import Postgres
from tools.stack import SERVICES

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    url: str
    database_url: str
    local_dir: Path
    env: dict[str, str]
    # Everything tools.stack printed so far (its own lines and its children's, prefixed).
    output: list[str] = field(default_factory=list)

    def token(self, user: str, role: str, ttl: int = 3600) -> str:
        key = self.local_dir / "dev-auth" / "signing-key.pem"
        return mint_token(key, user, role, issuer="creditmeter-dev", audience="creditmeter", ttl_seconds=ttl)

    def headers(self, user: str, role: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(user, role)}"}

    def verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.verify"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="session")
async def e2e_database(postgres: Postgres) -> str:
    return await postgres.database("e2e")


@contextlib.contextmanager
def run_stack(database_url: str, local: Path, port: int = 0, **overrides: str) -> Iterator[Stack]:
    """Runs tools.stack (what `make run` runs) on free ports until the block ends; stops it by PID.

    ``port`` fixes the gateway's port when the caller must know it in advance (an OIDC redirect URI).
    """
    port = port or free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        GATEWAY_PORT=str(port),
        GATEWAY_ADMIN_PORT=str(free_port()),
        CREDITMETER_LOCAL_DIR=str(local),
        PYTHONPATH=f"{ROOT}:{ROOT / 'gen' / 'python'}",
        # Every service on a free port: the stack wires them to each other and to Envoy.
        **{f"{spec.name.upper()}_GRPC_PORT": "0" for spec in SERVICES},
        **overrides,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    ready = threading.Event()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "[stack] ready" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not ready.wait(120) or process.poll() is not None:
            raise RuntimeError("the stack did not start:\n" + "".join(output[-40:]))
        yield Stack(f"http://127.0.0.1:{port}", database_url, local, env, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session")
def stack(e2e_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    local = tmp_path_factory.mktemp("stack")
    ensure_dev_keys(local / "dev-auth")
    # A loaded 2-core CI box can take more than metering's default 2 s to charge: tests want settled answers.
    with run_stack(e2e_database, local, METERING_TRACK_WAIT_MS="20000") as running:
        yield running


@pytest.fixture(scope="module")
async def module_database(postgres: Postgres, request: pytest.FixtureRequest) -> str:
    return await postgres.database(f"e2e_{request.module.__name__.rsplit('.', 1)[-1]}")


@pytest.fixture(scope="module")
def module_stack(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of the test module's own, stopped when the module ends.

    For tests that flood the stack (fuzzing, hostile sweeps): the background work
    their traffic leaves behind (recovery passes, catalog refreshes) must not
    slow down the tests that run after them.
    """
    local = tmp_path_factory.mktemp("module-stack")
    ensure_dev_keys(local / "dev-auth")
    with run_stack(module_database, local) as running:
        yield running
