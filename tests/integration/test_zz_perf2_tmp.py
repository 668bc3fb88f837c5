import asyncio, time, uuid
import asyncpg
from creditmeter.metering.v1 import metering_pb2 as pb
from tests.integration.conftest import USD, Credits, MeteringCaller

async def test_perf2(metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool) -> None:
    import services.metering.workflow as wf, services.metering.repository as repo
    from services.credits import repository as crepo
    import services.credits.service as csvc
    stats = {}
    def wrap(mod, name, key=None):
        f = getattr(mod, name)
        async def w(*a, **k):
            t = time.perf_counter()
            try: return await f(*a, **k)
            finally: stats[key or name] = stats.get(key or name, 0) + time.perf_counter() - t
        setattr(mod, name, w)
    for n in ("record_events", "settle", "set_prices"): wrap(repo, n)
    wrap(crepo, "charge_usage_batch")
    wrap(csvc.CreditsServicer, "ChargeUsageBatch", "credits_rpc_handler")
    wrap(wf.Metering, "_charge_priced")
    wrap(wf.Metering, "_price_at_door")
    wrap(wf.Metering, "track")
    import services.metering.service as msvc
    wrap(msvc.MeteringServicer, "TrackUsageBatch", "metering_handler")
    users = [f"perf-{uuid.uuid4().hex[:8]}-{i}" for i in range(500)]
    from creditmeter.credits.v1 import credits_pb2 as cpb
    await asyncio.gather(*(credits.as_admin("Allocate", cpb.AllocateRequest(user_id=u, amount_nanos=100*USD, reason="x", request_id=uuid.uuid4().hex)) for u in users))
    def batch():
        return pb.TrackUsageBatchRequest(events=[pb.UsageEvent(event_id=uuid.uuid4().hex, user_id=users[i % 500], service=pb.LLM, model="openai/gpt-4o-mini", input_tokens=100, output_tokens=10) for i in range(1000)])
    batches = [batch() for _ in range(12)]
    t = time.perf_counter()
    for b in batches:
        await metering.call("TrackUsageBatch", b)
    total = time.perf_counter() - t
    print(f"\nPERF2 sequential 12000: {total:.2f}s", {k: round(v, 2) for k, v in stats.items()})
