-- Record first, charge from the outbox. An event is recorded before it is
-- priced or charged; the events table itself is the outbox the charger and the
-- recovery pass work from. States (docs/usage-pipeline.md):
--   RECORDED  accepted and durable; cost may still be NULL (not priced yet)
--   CHARGED   the ledger charged the whole cost
--   SHORTFALL the ledger charged what the balance held; shortfall_nanos unpaid
--   PARKED    given up after bounded retries, with park_reason; an admin looks
-- Old rows are CHARGED (with or without a shortfall): they keep their status
-- when it was fully paid and become SHORTFALL otherwise.
ALTER TABLE events DROP CONSTRAINT charge_adds_up;
ALTER TABLE events DROP CONSTRAINT events_status_check;
ALTER TABLE events ALTER COLUMN cost_nanos DROP NOT NULL;
ALTER TABLE events ALTER COLUMN price_version SET DEFAULT '';
ALTER TABLE events
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    -- When the recovery pass may next pick the event up (the inline charger
    -- gets a head start; a claim pushes it out by a lease).
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp() + interval '5 seconds',
    ADD COLUMN last_error text NOT NULL DEFAULT '',
    ADD COLUMN park_reason text NOT NULL DEFAULT '';
UPDATE events SET status = 'SHORTFALL' WHERE status = 'CHARGED' AND shortfall_nanos > 0;
ALTER TABLE events ADD CONSTRAINT events_status_check
    CHECK (status IN ('RECORDED', 'CHARGED', 'SHORTFALL', 'PARKED'));
ALTER TABLE events ADD CONSTRAINT charge_adds_up
    CHECK (status NOT IN ('CHARGED', 'SHORTFALL') OR
           (cost_nanos IS NOT NULL AND charged_nanos + shortfall_nanos = cost_nanos
            AND (status = 'SHORTFALL') = (shortfall_nanos > 0)));
ALTER TABLE events ADD CONSTRAINT parked_has_reason CHECK ((status = 'PARKED') = (park_reason <> ''));
ALTER TABLE events ADD CONSTRAINT settled_events_are_priced
    CHECK (status = 'RECORDED' OR status = 'PARKED' OR cost_nanos IS NOT NULL);

DROP INDEX events_uncharged;
CREATE INDEX events_due ON events (next_attempt_at) WHERE status = 'RECORDED';
CREATE INDEX events_parked ON events (recorded_at) WHERE status = 'PARKED';

-- Records a whole batch, all or nothing, in one round trip: inserts the events
-- not seen before (set-based) with their rollup counts, then checks every
-- event id that already existed against its fingerprint. Any mismatch raises
-- (SQLSTATE CM001, DETAIL = the event id), which rolls back the whole
-- statement: nothing of the batch is recorded. Exact repeats are duplicates.
-- Costs may be NULL (not priced yet). Returns one row per input event.
CREATE FUNCTION record_events(
    p_ids text[], p_users text[], p_services text[], p_models text[], p_providers text[], p_input bigint[],
    p_output bigint[], p_quantity bigint[], p_byok boolean[], p_holds text[], p_occurred timestamptz[],
    p_metadata jsonb[], p_fingerprints text[], p_costs bigint[], p_versions text[]
) RETURNS TABLE (event_id text, is_new boolean, status text, cost_nanos bigint, price_version text,
                 charged_nanos bigint, shortfall_nanos bigint, transaction_id text, park_reason text)
LANGUAGE plpgsql AS $$
DECLARE
  v_new text[];
  v_reused text;
BEGIN
  WITH inserted AS (
      INSERT INTO events AS e (event_id, user_id, service, model, provider, input_tokens, output_tokens, quantity,
                               byok, hold_id, occurred_at, metadata, fingerprint, cost_nanos, price_version, status)
      SELECT i.*, 'RECORDED'
        FROM unnest(p_ids, p_users, p_services, p_models, p_providers, p_input, p_output, p_quantity, p_byok,
                    p_holds, p_occurred, p_metadata, p_fingerprints, p_costs, p_versions) AS i
      ON CONFLICT ON CONSTRAINT events_pkey DO NOTHING
      RETURNING e.*
  ), counted AS (
      INSERT INTO daily_usage AS d (user_id, day, service, model, event_count, input_tokens, output_tokens, quantity,
                                    cost_nanos)
      SELECT x.user_id, (x.occurred_at AT TIME ZONE 'UTC')::date, x.service, x.model, count(*), sum(x.input_tokens),
             sum(x.output_tokens), sum(x.quantity), coalesce(sum(x.cost_nanos), 0)
        FROM inserted x GROUP BY 1, 2, 3, 4
      ON CONFLICT (user_id, day, service, model) DO UPDATE SET
          event_count = d.event_count + EXCLUDED.event_count,
          input_tokens = d.input_tokens + EXCLUDED.input_tokens,
          output_tokens = d.output_tokens + EXCLUDED.output_tokens,
          quantity = d.quantity + EXCLUDED.quantity,
          cost_nanos = d.cost_nanos + EXCLUDED.cost_nanos
  )
  SELECT coalesce(array_agg(x.event_id), '{}') INTO v_new FROM inserted x;

  IF cardinality(v_new) = cardinality(p_ids) THEN
    -- All new (the common case): answer from the input, no second look at the table.
    RETURN QUERY
      SELECT i.id, true, 'RECORDED'::text, i.cost, i.version, 0::bigint, 0::bigint, ''::text, ''::text
        FROM unnest(p_ids, p_costs, p_versions) AS i(id, cost, version);
    RETURN;
  END IF;

  -- A new statement, a new snapshot: rows a concurrent batch committed while we waited are visible here.
  SELECT i.id INTO v_reused
    FROM unnest(p_ids, p_fingerprints) AS i(id, fp)
    JOIN events e ON e.event_id = i.id
    LEFT JOIN unnest(v_new) AS n(id) ON n.id = i.id
   WHERE n.id IS NULL AND e.fingerprint <> i.fp
   LIMIT 1;
  IF v_reused IS NOT NULL THEN
    RAISE EXCEPTION 'event id reused with a different payload' USING ERRCODE = 'CM001', DETAIL = v_reused;
  END IF;

  RETURN QUERY
    SELECT e.event_id, n.id IS NOT NULL, e.status, e.cost_nanos, e.price_version, e.charged_nanos,
           e.shortfall_nanos, e.transaction_id, e.park_reason
      FROM unnest(p_ids) WITH ORDINALITY AS i(id, ord)
      JOIN events e ON e.event_id = i.id
      LEFT JOIN unnest(v_new) AS n(id) ON n.id = i.id
     ORDER BY i.ord;
END $$;
