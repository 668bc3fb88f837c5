"""make verify finds a corrupted ledger, and passes on a healthy one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from services.credits.config import CreditsSettings
from services.credits.server import create_server
from tests.conftest import Keys, Postgres, credits_environ, new_user
from tests.integration.conftest import USD, Credits

ROOT = Path(__file__).resolve().parents[2]


def _run_verify(url: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=f"{ROOT}:{ROOT / 'gen' / 'python'}")
    return subprocess.run(
        [sys.executable, "-m", "tools.verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("corruption", "check"),
    [
        (
            "UPDATE accounts SET balance_nanos = balance_nanos + 1 WHERE user_id = $1",
            "balance_equals_postings",
        ),
        (
            "UPDATE grants SET remaining_nanos = remaining_nanos - 1 WHERE user_id = $1 AND remaining_nanos > 0",
            "grants_back_balance",
        ),
        ("UPDATE accounts SET held_nanos = 1 WHERE user_id = $1", "held_equals_active_holds"),
        ("UPDATE accounts SET tier_change_id = 'not-a-change' WHERE user_id = $1", "tier_matches_latest_change"),
        (
            "ALTER TABLE transactions DISABLE TRIGGER transactions_immutable",
            "transactions_immutable",
        ),
    ],
)
async def test_verify_fails_on_a_corrupted_ledger(postgres: Postgres, keys: Keys, corruption: str, check: str) -> None:
    import grpc

    url = await postgres.database("verify_" + check)
    running = await create_server(CreditsSettings.from_env(credits_environ(url, keys)))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            client = Credits(chan, keys)
            user = new_user()
            await client.allocate(user, 5 * USD)
            await client.deduct(user, 2 * USD)
    finally:
        await running.stop(1)
    healthy = _run_verify(url)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "[ok  ] balance_equals_postings" in healthy.stdout
    conn = await asyncpg.connect(url, server_settings={"search_path": "credits"})
    try:
        if "$1" in corruption:
            await conn.execute(corruption, user)
        else:
            await conn.execute(corruption)
    finally:
        await conn.close()
    broken = _run_verify(url)
    assert broken.returncode == 1
    assert f"[FAIL] {check}" in broken.stdout
    assert "INVARIANTS BREACHED" in broken.stdout
