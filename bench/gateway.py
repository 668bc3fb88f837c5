"""The whole stack through the real Envoy gateway, against baselines taken in the same run.

``make bench`` runs this. One run, one database server (embedded PostgreSQL in a
temporary folder, or ``BENCH_DATABASE_URL``), in this order:

1. Raw PostgreSQL (asyncpg, the same number of concurrent clients as wrk has
   connections): a conditional UPDATE of one hot row, conditional UPDATEs spread
   over 200 rows, single-row INSERTs, primary-key SELECTs, and COPY of 1,000-row
   batches (several in flight).
2. The stack exactly as ``make run`` starts it (tools.stack: the services, the
   fake OpenRouter, Envoy), on free ports, on that server.
3. wrk through Envoy, each scenario for the same duration: the public
   ``GET /api/v1/credits/tiers/compare`` (the baseline route), ``track``,
   ``authorize``, ``deduct`` over 200 accounts, ``deduct`` on one hot account,
   ``balance``. After each scenario a short slice of the tiers route runs again
   (``--baseline-slice``); a scenario's ratio is to the mean of the tiers
   slices just before and after it, so that the machine's drift over the run
   does not land in the ratios.
4. Batch ingestion through Envoy: 1,000-event ``track-batch`` calls over
   hundreds of accounts, several in flight, timed until every event is charged
   in the ledger; against raw COPY of as many rows.
5. gRPC ``Deduct`` on one hot account straight to the credits service (32
   callers) against the raw hot-row UPDATE.

Afterwards: the ledger is checked for double charges and overspend on the
accounts the run charged, and ``make verify``'s checks run on the database.
Prints one table (ratios to the tiers route and to the raw figures) and JSON.
Timings are never asserted; ratios within one run are what count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from bench import bench_database, raw_pool
from services.common.auth import ensure_dev_keys
from tests.e2e.conftest import Stack, run_stack

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).with_name("wrk_script.lua")
USD = 1_000_000_000
MODEL = "openai/gpt-4o-mini"
LLM = 1  # ServiceKind LLM; proto3 JSON accepts the number whatever the value's name
SPREAD_ACCOUNTS = 200
COPY_COLUMNS = ["event_id", "user_id", "service", "model", "input_tokens", "output_tokens", "cost_nanos", "state"]


@dataclass
class Row:
    """One measured scenario."""

    name: str
    rate: float  # operations (or events, rows) per second
    p50_ms: float | None
    p99_ms: float | None
    unit: str = "req/s"
    failed: int = 0
    note: str = ""
    ratios: dict[str, float] = field(default_factory=dict)
    #: The tiers route's rate around this scenario (the mean of the slices just before and after it).
    baseline: float | None = None


def _cpu_ticks() -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, grouped by what it is."""
    hz = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                stat = handle.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / hz
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        name = comm
        if b"-m" in argv and argv.index(b"-m") + 1 < len(argv):
            name = argv[argv.index(b"-m") + 1].decode(errors="replace")
        elif comm.startswith("postgres") or comm.startswith("postmaster"):
            name = "postgres"
        out[name] = out.get(name, 0.0) + used
    return out


def _cpu_share(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores used by each group between two snapshots (only groups above 2% of a core)."""
    used = {k: (after.get(k, 0.0) - before.get(k, 0.0)) / seconds for k in after}
    return {k: round(v, 2) for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v >= 0.02}


_DB_COUNTERS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched", "blks_hit")


async def _db_counters(pool: asyncpg.Pool) -> dict[str, int]:
    """The database's cumulative statistics (commits, rows written and read), for per-request figures."""
    row = await pool.fetchrow(
        "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_fetched, blks_hit"
        " FROM pg_stat_database WHERE datname = current_database()"
    )
    assert row is not None
    return dict(row)


def _per_request(before: dict[str, int], after: dict[str, int], requests: int) -> dict[str, float]:
    return {key: round((after[key] - before[key]) / max(1, requests), 2) for key in _DB_COUNTERS}


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _pcts(latencies_ms: list[float]) -> tuple[float | None, float | None]:
    if len(latencies_ms) < 2:
        return None, None
    cuts = statistics.quantiles(latencies_ms, n=100)
    return round(cuts[49], 2), round(cuts[98], 2)


async def _timed(duration: float, concurrency: int, one: Callable[[int], Awaitable[None]]) -> tuple[float, list[float]]:
    """Calls ``one`` from ``concurrency`` workers for ``duration`` seconds; (ops/s, latencies in ms)."""
    latencies: list[float] = []
    counter = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < stop_at:
            counter += 1
            start = time.perf_counter()
            await one(counter)
            latencies.append((time.perf_counter() - start) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - began), latencies


# --- raw PostgreSQL -----------------------------------------------------------------------


def _copy_rows(batch: int, accounts: int, tag: str) -> list[tuple[Any, ...]]:
    return [
        (f"{tag}-{i}", f"acct-{random.randrange(accounts)}", LLM, MODEL, 1000, 500, 123_456, "pending")
        for i in range(batch)
    ]


async def _track_functions(url: str) -> None:
    """Times PL/pgSQL functions in this database (pg_stat_user_functions), for the batch scenario's split."""
    conn = await asyncpg.connect(url)
    try:
        name = str(await conn.fetchval("SELECT current_database()"))
        await conn.execute(f"""ALTER DATABASE "{name.replace('"', '""')}" SET track_functions = 'pl'""")
    except asyncpg.PostgresError as error:  # not a superuser on a configured database: no split, no harm
        _log(f"function timing off ({type(error).__name__})")
    finally:
        await conn.close()


async def _function_ms(pool: asyncpg.Pool) -> dict[str, tuple[int, float]]:
    """(calls, total ms) so far of every timed function in the database, by name."""
    rows = await pool.fetch("SELECT funcname, calls, total_time FROM pg_stat_user_functions")
    return {r["funcname"]: (r["calls"], r["total_time"]) for r in rows}


async def raw_baselines(url: str, duration: float, concurrency: int, opts: argparse.Namespace) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    await _track_functions(url)
    pool = await raw_pool(url, concurrency)
    assert pool is not None
    try:
        await pool.execute(
            """
            DROP SCHEMA IF EXISTS bench_raw CASCADE;
            CREATE SCHEMA bench_raw;
            CREATE TABLE bench_raw.hot (id int PRIMARY KEY, balance bigint NOT NULL);
            CREATE TABLE bench_raw.spread (id int PRIMARY KEY, balance bigint NOT NULL);
            CREATE TABLE bench_raw.events (
                event_id text PRIMARY KEY, user_id text NOT NULL, service int NOT NULL, model text NOT NULL,
                input_tokens bigint NOT NULL, output_tokens bigint NOT NULL, cost_nanos bigint NOT NULL,
                state text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE bench_raw.inserts (id bigserial PRIMARY KEY, user_id text NOT NULL, amount bigint NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO bench_raw.hot VALUES (1, 1000000000000000);
            INSERT INTO bench_raw.spread SELECT g, 1000000000000000 FROM generate_series(1, 200) g;
            """
        )

        async def hot(_: int) -> None:
            await pool.execute("UPDATE bench_raw.hot SET balance = balance - 1 WHERE id = 1 AND balance >= 1")

        async def spread(_: int) -> None:
            await pool.execute(
                "UPDATE bench_raw.spread SET balance = balance - 1 WHERE id = $1 AND balance >= 1",
                random.randint(1, SPREAD_ACCOUNTS),
            )

        async def insert(_: int) -> None:
            await pool.execute(
                "INSERT INTO bench_raw.inserts (user_id, amount) VALUES ($1, 1)", f"acct-{random.randrange(200)}"
            )

        async def select(_: int) -> None:
            await pool.fetchrow("SELECT * FROM bench_raw.spread WHERE id = $1", random.randint(1, SPREAD_ACCOUNTS))

        for name, op in (
            ("raw_hot_update", hot),
            ("raw_spread_update", spread),
            ("raw_insert", insert),
            ("raw_select", select),
        ):
            rate, lat = await _timed(duration, concurrency, op)
            rows[name] = Row(name, rate, *_pcts(lat), unit="stmt/s")
            _log(f"{name}: {rate:.0f}/s")

        # COPY: as many rows as the batch scenario sends, in the same batch size and parallelism.
        batches = [_copy_rows(opts.batch_size, opts.batch_accounts, f"c{b}") for b in range(opts.batches)]
        queue = iter(batches)
        latencies: list[float] = []

        async def copier() -> None:
            async with pool.acquire() as conn:
                for records in queue:
                    start = time.perf_counter()
                    await conn.copy_records_to_table(
                        "events", schema_name="bench_raw", records=records, columns=COPY_COLUMNS
                    )
                    latencies.append((time.perf_counter() - start) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(copier() for _ in range(opts.in_flight)))
        rate = opts.batches * opts.batch_size / (time.perf_counter() - began)
        rows["raw_copy"] = Row("raw_copy", rate, *_pcts(latencies), unit="rows/s")
        _log(f"raw_copy: {rate:.0f} rows/s")
    finally:
        await pool.close()
    return rows


# --- wrk through Envoy ----------------------------------------------------------------------------


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for our ASCII inputs


def wrk(
    stack: Stack,
    opts: argparse.Namespace,
    folder: Path,
    name: str,
    method: str,
    path: str,
    duration: int | None = None,
    **kw: Any,
) -> Row:
    """Runs one wrk scenario and returns its row (rate counts 2xx responses only)."""
    duration = duration or opts.duration
    headers = {"content-type": "application/json", **kw.get("headers", {})}
    users: list[str] = kw.get("users") or ["nobody"]
    prelude = "\n".join(
        [
            f"METHOD = {_lua_string(method)}",
            f"PATH = {_lua_string(path)}",
            f"BODY = {_lua_string(kw.get('body', ''))}",
            f"RUN = {_lua_string(name + '-' + uuid.uuid4().hex[:6])}",
            "TOKENS = {" + ", ".join(_lua_string(t) for t in kw.get("tokens", [])) + "}",
            "HEADERS = {" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()) + "}",
            "USERS = {" + ", ".join(_lua_string(u) for u in users) + "}",
        ]
    )
    script = folder / f"{name}.lua"
    script.write_text(prelude + "\n" + LUA.read_text())
    command = [
        "wrk",
        f"-t{opts.threads}",
        f"-c{opts.connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        stack.url,
    ]
    cpu_before, cpu_began = _cpu_ticks(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True)
    cpu = _cpu_share(cpu_before, _cpu_ticks(), time.perf_counter() - cpu_began)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary for {name}:\n{done.stdout}\n{done.stderr}")
    stats = json.loads(line[len("WRKJSON ") :])
    failed = stats["non2xx"] + stats["connect"] + stats["read"] + stats["write"] + stats["timeout"]
    ok = stats["requests"] - stats["non2xx"]
    rate = ok / (stats["duration_us"] / 1e6)
    row = Row(name, rate, stats["p50_us"] / 1000, stats["p99_us"] / 1000, failed=failed)
    row.note = json.dumps({"ok": ok, "cores": cpu})
    _log(f"{name}: {rate:.0f} req/s ok, {failed} failed, p50 {row.p50_ms} ms, p99 {row.p99_ms} ms; cores {cpu}")
    if failed:
        # Show what the failures were, so a bench run is never quietly wrong.
        _log(f"{name}: sample failure: {_sample_failure(stack, method, path, kw)}")
    return row


def _sample_failure(stack: Stack, method: str, path: str, kw: dict[str, Any]) -> str:
    user = (kw.get("users") or ["nobody"])[0]
    n = "probe-" + uuid.uuid4().hex[:8]
    body = kw.get("body", "").replace("{n}", n).replace("{user}", user)
    headers = {"content-type": "application/json", **kw.get("headers", {})}
    if kw.get("tokens"):
        headers["authorization"] = f"Bearer {kw['tokens'][0]}"
    response = httpx.request(
        method,
        stack.url + path.replace("{n}", n).replace("{user}", user),
        headers=headers,
        content=body or None,
        timeout=10,
    )
    return f"{response.status_code} {response.text[:300]}"


# --- seeding ---------------------------------------------------------------------------------------


async def set_enterprise(client: httpx.AsyncClient, admin: dict[str, str], users: list[str]) -> None:
    """Puts every user on the enterprise tier: unlimited calls and $999,999.99 of credits."""
    limit = asyncio.Semaphore(16)

    async def one(user: str) -> None:
        async with limit:
            response = await client.post(
                "/api/v1/credits/tier",
                headers=admin,
                json={"user_id": user, "tier": "enterprise", "request_id": f"seed-{user}", "reason": "bench"},
            )
            response.raise_for_status()

    await asyncio.gather(*(one(u) for u in users))


# --- batch ingestion -----------------------------------------------------------------------------


async def _ledger_total(pool: asyncpg.Pool, users: list[str]) -> int:
    return int(
        await pool.fetchval(
            "SELECT coalesce(sum(balance_nanos), 0) FROM credits.accounts WHERE user_id = ANY($1)", users
        )
    )


async def batch_ingestion(stack: Stack, pool: asyncpg.Pool, opts: argparse.Namespace, svc: dict[str, str]) -> Row:
    users = [f"batch-{uuid.uuid4().hex[:6]}-{i}" for i in range(opts.batch_accounts)]
    async with httpx.AsyncClient(base_url=stack.url, timeout=120) as client:
        await set_enterprise(client, stack.headers("bench-admin", "admin"), users)
    before = await _ledger_total(pool, users)
    run = uuid.uuid4().hex[:6]
    bodies = [
        json.dumps(
            {
                "events": [
                    {
                        "event_id": f"b-{run}-{b}-{i}",
                        "user_id": random.choice(users),
                        "service": LLM,
                        "model": MODEL,
                        "input_tokens": "1000",
                        "output_tokens": "500",
                    }
                    for i in range(opts.batch_size)
                ]
            }
        ).encode()
        for b in range(opts.batches)
    ]
    queue = iter(bodies)
    latencies: list[float] = []
    failures: list[str] = []
    cost = 0
    costs_known = True

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal cost, costs_known
        for body in queue:
            start = time.perf_counter()
            response = await client.post(
                "/api/v1/metering/track-batch", headers={**svc, "content-type": "application/json"}, content=body
            )
            latencies.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
                continue
            for result in response.json().get("results", []):
                value = int(result.get("cost_nanos", "0"))
                costs_known = costs_known and value > 0
                cost += value

    profiler = (
        _profiler(stack, opts, f"{opts.profile_out}.batch_ingest")
        if "batch_ingest" in opts.profile.split(",")
        else None
    )
    functions_before = await _function_ms(pool)
    cpu_before = _cpu_ticks()
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=stack.url, timeout=300) as client:
        await asyncio.gather(*(sender(client) for _ in range(opts.in_flight)))
    accepted = time.perf_counter() - began
    # Recorded is not enough: wait until the ledger shows every event charged.
    deadline = time.perf_counter() + 180
    charged = before - await _ledger_total(pool, users)
    last_change, last = time.perf_counter(), charged
    while time.perf_counter() < deadline:
        charged = before - await _ledger_total(pool, users)
        if costs_known and charged >= cost:
            break
        if charged != last:
            last_change, last = time.perf_counter(), charged
        elif not costs_known and time.perf_counter() - last_change > 5:
            break  # costs unknown from the answers: charged once the ledger stops moving
        await asyncio.sleep(0.05)
    elapsed = (last_change if not costs_known else time.perf_counter()) - began
    cores = _cpu_share(cpu_before, _cpu_ticks(), time.perf_counter() - began)
    if profiler is not None:
        profiler.wait(60)
        _log(f"py-spy profile of {opts.profile_service} during batch_ingest: {opts.profile_out}.batch_ingest")
    events = opts.batches * opts.batch_size
    await asyncio.sleep(0.6)  # backends report function statistics within half a second of going idle
    functions_after = await _function_ms(pool)
    # Database time spent in each stored function, per 1,000 events (the rest is plain statements).
    function_ms = {
        name: round((total - functions_before.get(name, (0, 0.0))[1]) * 1000 / events, 1)
        for name, (calls, total) in functions_after.items()
        if calls > functions_before.get(name, (0, 0.0))[0]
    }
    row = Row("batch_ingest", events / elapsed, *_pcts(latencies), unit="events/s", failed=len(failures))
    row.note = json.dumps(
        {
            "events": events,
            "accepted_s": round(accepted, 2),
            "charged_s": round(elapsed, 2),
            "charged_nanos": charged,
            "cost_nanos": cost if costs_known else None,
            "all_charged": (charged == cost) if costs_known else None,
            "cores": cores,
            "db_function_ms_per_1000_events": dict(sorted(function_ms.items(), key=lambda kv: -kv[1])[:6]),
        }
    )
    _log(f"batch_ingest: {row.rate:.0f} events/s charged, {len(failures)} failed batches, {row.note}")
    for failure in failures[:3]:
        _log(f"batch failure: {failure}")
    return row


# --- gRPC hot-account Deduct ----------------------------------------------------------------------


async def grpc_hot_deduct(stack: Stack, port: int, opts: argparse.Namespace, user: str) -> tuple[Row, int]:
    metadata = (("authorization", f"Bearer {stack.token('svc-platform', 'svc-platform')}"),)
    run = uuid.uuid4().hex[:6]
    failed = 0
    ok = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.CreditsServiceStub(channel)

        async def one(i: int) -> None:
            nonlocal failed, ok
            try:
                await stub.Deduct(
                    pb.DeductRequest(user_id=user, amount_nanos=1, reason="bench", request_id=f"g-{run}-{i}"),
                    metadata=metadata,
                    timeout=30,
                )
                ok += 1
            except grpc.aio.AioRpcError:
                failed += 1

        profiler = (
            _profiler(stack, opts, f"{opts.profile_out}.grpc_hot_deduct")
            if "grpc_hot_deduct" in opts.profile.split(",")
            else None
        )
        cpu_before, began = _cpu_ticks(), time.perf_counter()
        rate, lat = await _timed(opts.duration, opts.grpc_callers, one)
        cores = _cpu_share(cpu_before, _cpu_ticks(), time.perf_counter() - began)
        if profiler is not None:
            profiler.wait(60)
            _log(f"py-spy profile of {opts.profile_service} during grpc_hot_deduct: {opts.profile_out}.grpc_hot_deduct")
    row = Row("grpc_hot_deduct", rate * ok / max(1, ok + failed), *_pcts(lat), failed=failed)
    row.note = json.dumps({"ok": ok, "cores": cores})
    _log(f"grpc_hot_deduct: {row.rate:.0f}/s, {failed} failed, cores {cores}")
    return row, ok


# --- checks ------------------------------------------------------------------------------------------


async def check_charges(pool: asyncpg.Pool, user: str, at_least: int, at_most: int) -> list[str]:
    """No double charge, no overspend on one account; the count of charges is within what the clients saw."""
    problems = []
    row = await pool.fetchrow(
        """
        SELECT count(request_id) AS n, count(DISTINCT request_id) AS distinct_ids,
               coalesce(sum(amount_nanos) FILTER (WHERE debit_account = 'user:' || $1), 0)
             - coalesce(sum(amount_nanos) FILTER (WHERE credit_account = 'user:' || $1), 0) AS net_out,
               (SELECT balance_nanos FROM credits.accounts WHERE user_id = $1) AS balance,
               (SELECT held_nanos FROM credits.accounts WHERE user_id = $1) AS held
          FROM credits.transactions WHERE user_id = $1
        """,
        user,
    )
    deductions = await pool.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE user_id = $1 AND kind = 'DEDUCTION'", user
    )
    if row["distinct_ids"] != row["n"]:
        problems.append(f"{user}: request ids repeat")
    if row["balance"] != -row["net_out"]:
        problems.append(f"{user}: stored balance {row['balance']} != postings {-row['net_out']}")
    if row["balance"] < 0 or row["held"] > row["balance"]:
        problems.append(f"{user}: overspent (balance {row['balance']}, held {row['held']})")
    if not at_least <= deductions <= at_most:
        problems.append(f"{user}: {deductions} deductions, clients saw between {at_least} and {at_most}")
    return problems


async def check_spread(pool: asyncpg.Pool, users: list[str], at_least: int, at_most: int) -> list[str]:
    """Over many accounts: request ids unique, no negative balance, charges within what the clients saw."""
    row = await pool.fetchrow(
        """
        SELECT count(*) FILTER (WHERE kind = 'DEDUCTION' AND starts_with(request_id, 'deduct_spread-')) AS deductions,
               count(request_id) AS ids,
               count(DISTINCT (user_id, request_id)) FILTER (WHERE request_id IS NOT NULL) AS distinct_ids,
               (SELECT count(*) FROM credits.accounts
                 WHERE user_id = ANY($1) AND (balance_nanos < 0 OR held_nanos > balance_nanos)) AS overspent
          FROM credits.transactions WHERE user_id = ANY($1)
        """,
        users,
    )
    problems = []
    if row["ids"] != row["distinct_ids"]:
        problems.append("spread: request ids repeat")
    if row["overspent"]:
        problems.append(f"spread: {row['overspent']} accounts overspent")
    if not at_least <= row["deductions"] <= at_most:
        problems.append(f"spread: {row['deductions']} deductions, clients saw between {at_least} and {at_most}")
    return problems


def run_verify(stack: Stack) -> tuple[bool, str]:
    done = stack.verify()
    return done.returncode == 0, (done.stdout + done.stderr)[-2000:]


# --- the run -------------------------------------------------------------------------------------------


def _stack_pid(stack: Stack, service: str) -> int:
    for line in stack.output:
        match = re.search(rf"\[stack\] {service} gRPC on 127\.0\.0\.1:\d+ \(pid (\d+)\)", line)
        if match:
            return int(match.group(1))
    raise RuntimeError(f"the stack did not announce the {service} pid")


def _profiler(stack: Stack, opts: argparse.Namespace, output: str) -> subprocess.Popen[bytes]:
    """py-spy (pinned in requirements.lock) sampling one service for the scenario's duration."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(_stack_pid(stack, opts.profile_service)),
            "--duration",
            str(opts.duration),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            output,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stack_port(stack: Stack, service: str) -> int:
    for line in stack.output:
        match = re.search(rf"\[stack\] {service} gRPC on 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
    raise RuntimeError(f"the stack did not announce the {service} port")


def _ratios(rows: dict[str, Row]) -> None:
    tiers = rows["tiers_compare"].rate if "tiers_compare" in rows else None
    versus = {
        "track": "raw_insert",
        "authorize": "raw_insert",
        "deduct_spread": "raw_spread_update",
        "deduct_hot": "raw_hot_update",
        "balance": "raw_select",
        "batch_ingest": "raw_copy",
        "grpc_hot_deduct": "raw_hot_update",
    }
    for name, row in rows.items():
        base = row.baseline or tiers
        if base and not name.startswith("raw_") and name not in ("batch_ingest", "grpc_hot_deduct"):
            row.ratios["tiers"] = round(row.rate / base, 3)
        if name in versus:
            row.ratios["raw"] = round(row.rate / rows[versus[name]].rate, 3)
            row.ratios["raw_name"] = versus[name]  # type: ignore[assignment]


def table(rows: dict[str, Row]) -> str:
    lines = [
        "| scenario | rate | p50 ms | p99 ms | x tiers route | x raw PostgreSQL | failed |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows.values():
        raw = f"{row.ratios['raw']} x {row.ratios['raw_name']}" if "raw" in row.ratios else ""
        lines.append(
            f"| {row.name} | {row.rate:,.0f} {row.unit} | {row.p50_ms if row.p50_ms is not None else ''} | "
            f"{row.p99_ms if row.p99_ms is not None else ''} | {row.ratios.get('tiers', '')} | {raw} | {row.failed} |"
        )
    return "\n".join(lines)


async def bench(url: str, opts: argparse.Namespace, folder: Path) -> int:
    rows = await raw_baselines(url, opts.duration, opts.connections, opts)
    local = folder / "stack"
    ensure_dev_keys(local / "dev-auth")
    problems: list[str] = []
    # The gateway's flood guard (a token bucket per Envoy, GATEWAY_RATE_LIMIT_RPS) is off for the run:
    # the bench measures capacity, and a throttled baseline route would flatter every ratio.
    with run_stack(url, local, LOG_LEVEL="WARNING", GATEWAY_RATE_LIMIT_RPS="0") as stack:
        _log(f"stack up at {stack.url}")
        admin = stack.headers("bench-admin", "admin")
        svc = {"authorization": f"Bearer {stack.token('svc-platform', 'svc-platform')}"}
        spread = [f"spread-{uuid.uuid4().hex[:6]}-{i}" for i in range(SPREAD_ACCOUNTS)]
        hot = f"hot-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            await set_enterprise(client, admin, [*spread, hot])
        json_headers = svc
        scenarios: list[tuple[str, str, str, dict[str, Any]]] = [
            ("tiers_compare", "GET", "/api/v1/credits/tiers/compare", {}),
            (
                "track",
                "POST",
                "/api/v1/metering/track",
                {
                    "headers": json_headers,
                    "users": spread,
                    "body": json.dumps(
                        {
                            "event": {
                                "event_id": "{n}",
                                "user_id": "{user}",
                                "service": LLM,
                                "model": MODEL,
                                "input_tokens": "1000",
                                "output_tokens": "500",
                            }
                        }
                    ),
                },
            ),
            (
                "authorize",
                "POST",
                "/api/v1/metering/authorize",
                {
                    "headers": json_headers,
                    "users": spread,
                    "body": json.dumps(
                        {
                            "user_id": "{user}",
                            "service": LLM,
                            "model": MODEL,
                            "input_tokens": "1000",
                            "max_output_tokens": "500",
                            "request_id": "{n}",
                        }
                    ),
                },
            ),
            (
                "deduct_spread",
                "POST",
                "/api/v1/credits/deduct",
                {
                    "headers": json_headers,
                    "users": spread,
                    "body": '{"user_id":"{user}","amount_nanos":"1000","reason":"bench","request_id":"{n}"}',
                },
            ),
            (
                "deduct_hot",
                "POST",
                "/api/v1/credits/deduct",
                {
                    "headers": json_headers,
                    "users": [hot],
                    "body": '{"user_id":"{user}","amount_nanos":"1000","reason":"bench","request_id":"{n}"}',
                },
            ),
            (
                "balance",
                "GET",
                "/api/v1/credits/balance",
                # Each user reads their own balance with their own token.
                {"users": spread, "tokens": [stack.token(user, "user") for user in spread]},
            ),
        ]
        wanted = set(opts.only.split(",")) if opts.only else None
        # The machine's speed drifts over a run (a shared 2-core box: the tiers route alone was seen
        # anywhere from 2,400 to 3,960 req/s within one run). So each scenario is bracketed by short
        # slices of the tiers route, and its ratio is taken against their mean, not against one
        # measurement made minutes earlier.
        slices: list[float] = []
        stats_pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        assert stats_pool is not None
        for name, method, path, kw in scenarios:
            if wanted is not None and name not in wanted:
                continue
            output = f"{opts.profile_out}.{name}"
            profiler = _profiler(stack, opts, output) if name in opts.profile.split(",") else None
            counters = await _db_counters(stats_pool)
            rows[name] = wrk(stack, opts, folder, name, method, path, **kw)
            if profiler is not None:
                profiler.wait(60)
                _log(f"py-spy profile of {opts.profile_service} during {name}: {output}")
            await asyncio.sleep(1)  # let the tail of in-flight requests finish before the next scenario
            # PostgreSQL's statistics are reported by each backend within a second of its last transaction.
            note = json.loads(rows[name].note)
            note["db_per_request"] = _per_request(counters, await _db_counters(stats_pool), note["ok"])
            rows[name].note = json.dumps(note)
            _log(f"{name}: database work per request {note['db_per_request']}")
            if name == "tiers_compare":
                slices.append(rows[name].rate)
            elif slices:
                before = slices[-1]
                after = wrk(stack, opts, folder, "tiers_compare", "GET", scenarios[0][2], opts.baseline_slice).rate
                slices.append(after)
                rows[name].baseline = (before + after) / 2
                await asyncio.sleep(1)
        await stats_pool.close()
        if "tiers_compare" in rows:
            note = json.loads(rows["tiers_compare"].note)
            note["slices"] = [round(rate) for rate in slices]
            rows["tiers_compare"].note = json.dumps(note)

        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        assert pool is not None
        try:
            if "deduct_hot" in rows:
                hot_ok = json.loads(rows["deduct_hot"].note)["ok"]
                problems += await check_charges(
                    pool, hot, hot_ok, hot_ok + rows["deduct_hot"].failed + opts.connections
                )
            if "deduct_spread" in rows:
                spread_ok = json.loads(rows["deduct_spread"].note)["ok"]
                problems += await check_spread(
                    pool, spread, spread_ok, spread_ok + rows["deduct_spread"].failed + opts.connections
                )
            if wanted is None or "batch_ingest" in wanted:
                rows["batch_ingest"] = await batch_ingestion(stack, pool, opts, svc)
                batch = json.loads(rows["batch_ingest"].note)
                if batch["all_charged"] is False:
                    problems.append(f"batch: charged {batch['charged_nanos']} of {batch['cost_nanos']} nanos")
            if wanted is None or "grpc_hot_deduct" in wanted:
                grpc_user = f"grpc-hot-{uuid.uuid4().hex[:8]}"
                async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
                    await set_enterprise(client, admin, [grpc_user])
                rows["grpc_hot_deduct"], grpc_ok = await grpc_hot_deduct(
                    stack, _stack_port(stack, "credits"), opts, grpc_user
                )
                problems += await check_charges(pool, grpc_user, grpc_ok, grpc_ok + rows["grpc_hot_deduct"].failed)
        finally:
            await pool.close()
        await asyncio.sleep(2)
        ok, report = run_verify(stack)
        if not ok:
            problems.append("make verify failed:\n" + report)
    _ratios(rows)
    print(table(rows))
    print(json.dumps({name: vars(row) for name, row in rows.items()}))
    if problems:
        print("PROBLEMS:\n" + "\n".join(problems))
        return 1
    print("checks: no double charge, no overspend, verify passed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per scenario (default 8)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections and raw clients (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--baseline-slice",
        type=int,
        default=4,
        help="seconds of the tiers route measured after each scenario, for that scenario's ratio (default 4)",
    )
    parser.add_argument("--grpc-callers", type=int, default=32, help="concurrent gRPC Deduct callers (default 32)")
    parser.add_argument("--batches", type=int, default=40, help="track-batch calls (default 40)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (default 1000)")
    parser.add_argument("--batch-accounts", type=int, default=300, help="accounts the batches spread over")
    parser.add_argument("--in-flight", type=int, default=4, help="batches in flight at once (default 4)")
    parser.add_argument(
        "--only",
        default="",
        help="run only these scenarios, comma-separated (e.g. tiers_compare,track,batch_ingest); "
        "the raw baselines always run",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="scenarios to profile with py-spy, comma-separated (e.g. deduct_hot,balance,batch_ingest)",
    )
    parser.add_argument("--profile-service", default="credits", help="the service py-spy samples (default credits)")
    parser.add_argument(
        "--profile-out", default="profile.folded", help="py-spy output prefix (folded stacks; .<scenario> appended)"
    )
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it)", file=sys.stderr)
        return 2
    with bench_database() as (url, folder):
        print(
            f"{opts.connections} connections, {opts.duration} s per scenario; batches: {opts.batches} x "
            f"{opts.batch_size} events over {opts.batch_accounts} accounts, {opts.in_flight} in flight",
            flush=True,
        )
        return asyncio.run(bench(url, opts, folder))


if __name__ == "__main__":
    sys.exit(main())
