"""Benchmarks (`make bench`, `make bench-hot`, `make bench-auth`, `make bench-reports`) and what they share."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from services.common.db import keep_session
from tools.localdb import start_embedded

# The bench stops its embedded server (pg_ctl as another user: a real fork) after its gRPC scenario; with
# grpcio's fork support on, such a child can crash before exec (see tests/conftest.py, grpc/grpc#43055).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


@contextlib.contextmanager
def bench_database(prefix: str = "cm-bench-", *, configured: bool = True) -> Iterator[tuple[str, Path]]:
    """(database URL, scratch folder) for one bench run: ``BENCH_DATABASE_URL`` when ``configured`` allows it
    and it is set, otherwise an embedded PostgreSQL in the folder. Both are cleaned up afterwards, also when
    the bench is stopped with SIGTERM (which otherwise skips every ``finally``)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    handle = None
    try:
        url = os.environ.get("BENCH_DATABASE_URL") if configured else None
        if not url:
            handle, url = start_embedded(folder / "pg", "bench")
        yield url, folder
    finally:
        if handle is not None:
            handle.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


async def raw_pool(url: str, size: int) -> Any:
    """The raw PostgreSQL clients' pool: warm, and released without asyncpg's reset query (an extra round trip
    per statement that the services skip too), so the raw figures are PostgreSQL's. The raw clients leave no
    session state behind either."""
    return await asyncpg.create_pool(url, min_size=size, max_size=size, reset=keep_session)
