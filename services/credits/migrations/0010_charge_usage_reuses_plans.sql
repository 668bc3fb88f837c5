-- ledger_charge_usage (ChargeUsage: many usage charges of one account) gets the
-- switch 0009 gave the batch functions: a call of at most 64 charges reuses the
-- connection's cached generic plans instead of planning every statement again
-- (most calls carry a handful of charges), a larger one is still planned for
-- its real size (0006). Nothing else changes.
CREATE OR REPLACE FUNCTION ledger_charge_usage(
    p_user text, p_request_ids text[], p_amounts bigint[], p_fingerprints text[], p_models text[],
    p_references text[], p_versions text[], p_reasons text[], p_allow_partial boolean,
    p_actor_subject text, p_actor_role text
) RETURNS TABLE (status text, request_id text, transaction_id uuid, charged bigint, fingerprint text,
                 duplicate boolean, balance_after bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
  v_balance bigint;
  v_held bigint;
  v_due boolean;
  v_existing text[];
  v_total bigint;
BEGIN
  -- Small calls reuse the connection's cached generic plans; large ones are planned for their size.
  IF cardinality(p_request_ids) <= 64 THEN
    PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
  END IF;
  SELECT a.balance_nanos, a.held_nanos,
         (a.period_end <= now() OR coalesce(a.next_expiry_at <= now(), false))
    INTO v_balance, v_held, v_due
    FROM accounts a WHERE a.user_id = p_user FOR UPDATE;
  IF NOT FOUND OR v_due THEN
    RETURN QUERY SELECT 'SLOW_PATH'::text, NULL::text, NULL::uuid, NULL::bigint, NULL::text, NULL::boolean,
                        NULL::bigint;
    RETURN;
  END IF;

  SELECT coalesce(array_agg(t.request_id), '{}') INTO v_existing
    FROM transactions t WHERE t.user_id = p_user AND t.request_id = ANY (p_request_ids);

  WITH input AS (
      SELECT * FROM unnest(p_request_ids, p_amounts, p_fingerprints, p_models, p_references, p_versions, p_reasons)
             WITH ORDINALITY AS i(rid, amount, fp, model, ref, version, reason, ord)
       WHERE NOT (i.rid = ANY (v_existing))
  ), planned AS (
      SELECT input.*, sum(amount) OVER (ORDER BY ord) AS cum FROM input
  ), charged AS (
      SELECT planned.*,
             CASE WHEN p_allow_partial THEN greatest(0, least(amount, (v_balance - v_held) - (cum - amount)))
                  WHEN cum <= v_balance - v_held THEN amount
                  ELSE 0 END AS charge
        FROM planned
  ), running AS (
      SELECT charged.*, v_balance - sum(charge) OVER (ORDER BY ord) AS after FROM charged
  ), inserted AS (
      INSERT INTO transactions AS t (user_id, kind, amount_nanos, debit_account, credit_account, balance_after_nanos,
                                     request_id, fingerprint, actor_subject, actor_role, reason, service, model,
                                     reference_id, price_version)
      SELECT p_user, 'DEDUCTION', r.charge, 'user:' || p_user, 'platform:revenue', r.after,
             r.rid, r.fp, p_actor_subject, p_actor_role, r.reason,
             CASE WHEN p_actor_role = 'service' THEN p_actor_subject ELSE '' END, r.model, r.ref, r.version
        FROM running r WHERE r.charge > 0
       ORDER BY r.ord
      RETURNING t.amount_nanos
  )
  SELECT coalesce(sum(amount_nanos), 0) INTO v_total FROM inserted;

  IF v_total > 0 THEN
    UPDATE accounts a SET balance_nanos = a.balance_nanos - v_total WHERE a.user_id = p_user;
    PERFORM spend_grants(p_user, v_total, false);
  END IF;

  RETURN QUERY
    SELECT 'OK'::text, i.rid, t.transaction_id, coalesce(t.amount_nanos, 0::bigint), coalesce(t.fingerprint, i.fp),
           i.rid = ANY (v_existing), v_balance - v_total
      FROM unnest(p_request_ids, p_fingerprints) WITH ORDINALITY AS i(rid, fp, ord)
      LEFT JOIN transactions t ON t.user_id = p_user AND t.request_id = i.rid
     ORDER BY i.ord;
END $$;
