import asyncio, time, uuid
import asyncpg
from creditmeter.metering.v1 import metering_pb2 as pb
from tests.integration.conftest import USD, Credits, MeteringCaller

async def test_perf(metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool) -> None:
    users = [f"perf-{uuid.uuid4().hex[:8]}-{i}" for i in range(500)]
    from creditmeter.credits.v1 import credits_pb2 as cpb
    await asyncio.gather(*(credits.as_admin("Allocate", cpb.AllocateRequest(user_id=u, amount_nanos=100*USD, reason="x", request_id=uuid.uuid4().hex)) for u in users))
    def batch():
        return pb.TrackUsageBatchRequest(events=[pb.UsageEvent(event_id=uuid.uuid4().hex, user_id=users[i % 500], service=pb.LLM, model="openai/gpt-4o-mini", input_tokens=100, output_tokens=10) for i in range(1000)])
    batches = [batch() for _ in range(24)]
    t = time.perf_counter()
    sem = asyncio.Semaphore(4)
    async def one(b):
        async with sem:
            return await metering.call("TrackUsageBatch", b)
    res = await asyncio.gather(*(one(b) for b in batches))
    rec = time.perf_counter() - t
    while True:
        async with metering_db.acquire() as c:
            n = await c.fetchval("SELECT count(*) FROM events WHERE status='RECORDED'")
        if n == 0: break
        await asyncio.sleep(0.05)
    total = time.perf_counter() - t
    states = sum(1 for r in res for x in r.results if x.state == pb.EVENT_STATE_CHARGED)
    print(f"\nPERF 24000 events: answered {rec:.2f}s, all charged {total:.2f}s => {24000/total:.0f} ev/s; charged-in-answer {states}")


async def test_copy_baseline(metering_db: asyncpg.Pool) -> None:
    import datetime
    rows = [(uuid.uuid4().hex, "u", "LLM", "m", "", 100, 10, 0, False, "", datetime.datetime.now(datetime.UTC), "{}", "fp", 1, "v", "RECORDED") for _ in range(24000)]
    async with metering_db.acquire() as c:
        await c.execute("CREATE TEMP TABLE ev (LIKE events INCLUDING DEFAULTS)")
        t = time.perf_counter()
        await c.copy_records_to_table("ev", records=rows, columns=["event_id", "user_id", "service", "model", "provider", "input_tokens", "output_tokens", "quantity", "byok", "hold_id", "occurred_at", "metadata", "fingerprint", "cost_nanos", "price_version", "status"])
        dt = time.perf_counter() - t
    print(f"\nCOPY 24000 rows: {dt:.2f}s => {24000/dt:.0f} rows/s")
