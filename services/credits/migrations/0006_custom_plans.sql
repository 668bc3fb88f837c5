-- The set-based ledger functions take their input as arrays and join sets derived
-- from them (unnest) with each other. PostgreSQL's plan cache switches a
-- function's statements to a generic plan after five calls on a connection, and a
-- generic plan guesses 10 rows for every unnest: joins of two such sets become
-- nested loops, so a 2,000-item ChargeUsageBatch went from ~10 ms to ~5 s
-- (quadratic) once a connection had served a few batches (found with EXPLAIN
-- ANALYZE while profiling batch ingestion, bench/gateway.py). Planned for the
-- actual input every time, they stay linear; planning costs well under a
-- millisecond per call, and these functions run once per batch, not per item.
ALTER FUNCTION ledger_charge_usage_batch(text[], text[], bigint[], text[], uuid[], text[], text[], text[], text, text)
    SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION spend_grants_of_many(text[], bigint[], boolean) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION ledger_charge_usage(text, text[], bigint[], text[], text[], text[], text[], text[], boolean, text, text)
    SET plan_cache_mode = force_custom_plan;
