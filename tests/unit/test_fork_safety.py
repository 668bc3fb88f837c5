"""A real fork() from the test process survives gRPC traffic in flight (see GRPC_ENABLE_FORK_SUPPORT in conftest)."""

from __future__ import annotations

import asyncio
import os
import subprocess

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def _forks(count: int) -> int:
    """Runs /bin/true ``count`` times the way pgserver runs pg_ctl: with a change of identity, which makes
    CPython fork() instead of vfork(). Returns how many children failed."""
    failed = 0
    for _ in range(count):
        if subprocess.run(["/bin/true"], group=os.getgid(), capture_output=True, check=False).returncode != 0:
            failed += 1
    return failed


async def test_forked_children_survive_rpcs_in_flight() -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    done = asyncio.Event()
    calls = 0

    async def traffic() -> None:
        nonlocal calls
        while not done.is_set():
            await stub.Check(health_pb2.HealthCheckRequest())
            calls += 1

    workers = [asyncio.create_task(traffic()) for _ in range(4)]
    try:
        failed = await asyncio.to_thread(_forks, 150)
    finally:
        done.set()
        await asyncio.gather(*workers, return_exceptions=True)
        await channel.close()
        await server.stop(0)
    assert calls > 0  # the RPCs really were in flight while the children forked
    assert failed == 0, f"{failed} of 150 forked children died before exec"
