-- record_events is planned for its actual input on every call (0003), so that a
-- 1,000-event batch never runs on the plan cache's generic plan (10 rows
-- guessed per unnest). Most calls are small, though: EventRecorder groups the
-- concurrent `track` calls, a handful of events each. For them the planning is
-- most of the statement's cost (credits migration 0009 has the measurements of
-- the ledger's batch function). So a group of at most 64 events now reuses the
-- connection's cached generic plans, and a larger one is still planned for its
-- real size. The switch is a SET LOCAL inside a function with its own
-- plan_cache_mode setting, so it ends when the function returns. Nothing else
-- changes.
CREATE OR REPLACE FUNCTION record_events(
    p_ids text[], p_users text[], p_services text[], p_models text[], p_providers text[], p_input bigint[],
    p_output bigint[], p_quantity bigint[], p_byok boolean[], p_holds text[], p_occurred timestamptz[],
    p_metadata jsonb[], p_fingerprints text[], p_costs bigint[], p_versions text[]
) RETURNS TABLE (event_id text, is_new boolean, status text, cost_nanos bigint, price_version text,
                 charged_nanos bigint, shortfall_nanos bigint, transaction_id text, park_reason text)
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
  v_new text[];
  v_reused text;
BEGIN
  -- Small groups reuse the connection's cached generic plans; large ones are planned for their size.
  IF cardinality(p_ids) <= 64 THEN
    PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
  END IF;
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
       ORDER BY 1, 2, 3, 4
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
