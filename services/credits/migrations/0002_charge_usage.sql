-- Many usage charges for one account in one round trip (coalescing): each is
-- accepted while the running sum fits the available balance; with
-- p_allow_partial the first that does not fit gets what is left and the rest
-- nothing. (Amounts are never negative, so the running sum only grows and the
-- accepted charges are always a prefix.) A charge whose request id already
-- exists is a replay: returned as it was, not charged again. Each charged item
-- becomes one DEDUCTION transaction. Returns one row per input item, in input
-- order; or a single 'SLOW_PATH' row, changing nothing, when the account is
-- missing or has a period reset or grant expiry due. Only the account row is
-- locked.
CREATE FUNCTION ledger_charge_usage(
    p_user text, p_request_ids text[], p_amounts bigint[], p_fingerprints text[], p_models text[],
    p_references text[], p_versions text[], p_reasons text[], p_allow_partial boolean,
    p_actor_subject text, p_actor_role text
) RETURNS TABLE (status text, request_id text, transaction_id uuid, charged bigint, fingerprint text,
                 duplicate boolean, balance_after bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_balance bigint;
  v_held bigint;
  v_due boolean;
  v_existing text[];
  v_total bigint;
BEGIN
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
