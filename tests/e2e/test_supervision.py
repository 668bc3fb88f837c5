"""`make run` survives a crash: a killed child is restarted on its port, the others keep serving."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from services.common.auth import ensure_dev_keys
from tests.conftest import Postgres
from tests.e2e.conftest import Stack, run_stack

_STARTED = re.compile(r"\[stack\] (\w+) gRPC on 127\.0\.0\.1:(\d+) \(pid (\d+)\)")
_ENVOY = re.compile(r"\[stack\] envoy \(pid (\d+)\)")
_RESTARTED = re.compile(r"\[stack\] (\S+) restarted \(pid (\d+)\)")


@pytest.fixture(scope="module")
async def supervision_database(postgres: Postgres) -> str:
    return await postgres.database("supervision")


@pytest.fixture(scope="module")
def own_stack(supervision_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the test kills its processes, which the shared one must not suffer."""
    local: Path = tmp_path_factory.mktemp("supervised")
    ensure_dev_keys(local / "dev-auth")
    with run_stack(supervision_database, local) as running:
        yield running


def _pids(stack: Stack) -> dict[str, int]:
    pids: dict[str, int] = {}
    for line in list(stack.output):
        if match := _STARTED.search(line):
            pids[match.group(1)] = int(match.group(3))
        elif match := _ENVOY.search(line):
            pids["envoy"] = int(match.group(1))
        elif match := _RESTARTED.search(line):
            pids[match.group(1)] = int(match.group(2))
    return pids


def _wait_for(condition: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _status(stack: Stack, path: str, headers: dict[str, str] | None = None) -> int:
    try:
        return httpx.get(stack.url + path, headers=headers, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _logged(stack: Stack, text: str) -> bool:
    return any(text in line for line in list(stack.output))


def test_a_killed_service_is_restarted_while_the_others_keep_serving(own_stack: Stack) -> None:
    alice = own_stack.headers("sup-alice", "user")
    before = _pids(own_stack)
    assert set(before) >= {"credits", "metering", "coupons", "openrouter", "envoy"}

    os.kill(before["openrouter"], signal.SIGKILL)
    _wait_for(lambda: _logged(own_stack, f"openrouter (pid {before['openrouter']}) exited with -9"))
    # The old behaviour was to stop the whole stack here; now credits keeps answering meanwhile.
    assert _status(own_stack, "/api/v1/credits/balance", alice) == 200

    _wait_for(lambda: _pids(own_stack)["openrouter"] != before["openrouter"])
    _wait_for(lambda: _status(own_stack, "/api/v1/openrouter/account", alice) in (200, 404))

    os.kill(before["credits"], signal.SIGKILL)
    _wait_for(lambda: _logged(own_stack, f"credits (pid {before['credits']}) exited with -9"))
    _wait_for(lambda: _status(own_stack, "/api/v1/credits/balance", alice) == 200)
    assert _pids(own_stack)["credits"] != before["credits"]


def test_a_killed_gateway_comes_back_on_its_port(own_stack: Stack) -> None:
    envoy = _pids(own_stack)["envoy"]
    os.kill(envoy, signal.SIGKILL)
    _wait_for(lambda: _logged(own_stack, f"envoy (pid {envoy}) exited with -9"))
    _wait_for(lambda: _status(own_stack, "/api/v1/credits/tiers/compare") == 200)
    assert _pids(own_stack)["envoy"] != envoy


def test_a_killed_embedded_database_is_restarted_and_the_services_reconnect(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`make run` without DATABASE_URL: SIGKILL the embedded PostgreSQL; it comes back on the same data."""
    local: Path = tmp_path_factory.mktemp("embedded")
    ensure_dev_keys(local / "dev-auth")
    pid_file = local / "pgdata" / "postmaster.pid"
    with run_stack("", local) as stack:  # an empty DATABASE_URL: the stack starts its own server under local/
        alice = stack.headers("sup-embedded", "user")
        topped = httpx.post(
            stack.url + "/api/v1/credits/allocate",
            headers=stack.headers("ops", "admin"),
            json={"user_id": "sup-embedded", "amount_nanos": "7", "reason": "before", "request_id": "sup-1"},
            timeout=30,
        )
        assert topped.status_code == 200, topped.text
        balance = httpx.get(stack.url + "/api/v1/credits/balance", headers=alice, timeout=30).json()["balance_nanos"]
        postmaster = int(pid_file.read_text().splitlines()[0])

        os.kill(postmaster, signal.SIGKILL)
        _wait_for(lambda: _logged(stack, f"embedded PostgreSQL (pid {postmaster}) is gone"))
        _wait_for(lambda: _logged(stack, "embedded PostgreSQL restarted"), timeout=90)
        _wait_for(lambda: _status(stack, "/api/v1/credits/balance", alice) == 200)
        again = httpx.get(stack.url + "/api/v1/credits/balance", headers=alice, timeout=30).json()["balance_nanos"]
        assert again == balance  # the same data folder: nothing lost
        restarted = int(pid_file.read_text().splitlines()[0])
        assert restarted != postmaster
    # Stopping the stack stops the server it started, by PID.
    _wait_for(lambda: not _alive(restarted), timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
