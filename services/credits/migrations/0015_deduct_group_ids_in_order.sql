-- A group's transactions list in the order they were decided. uuid_v7 orders
-- by millisecond only (the rest is random), and a whole group of Deducts is
-- written within a millisecond or two, so ids drawn row by row put a hot
-- account's charges out of order in its history (transactions are listed by
-- id), their balance_after jumping up and down. ledger_charge_group now draws
-- the group's ids first, sorts them, and gives them out in input order: within
-- a group, an account's later charge has the larger id and the smaller balance
-- after. (Two groups written within the same millisecond may still interleave,
-- as any two transactions of that millisecond could before.) Nothing else
-- changes.
CREATE OR REPLACE FUNCTION ledger_charge_group(
    p_users text[], p_amounts bigint[], p_request_ids text[], p_fingerprints text[], p_subjects text[],
    p_roles text[], p_reasons text[], p_services text[], p_models text[], p_refs text[], p_versions text[]
) RETURNS TABLE (ord bigint, status text, transaction_id uuid, balance_after bigint, held bigint,
                 created_at timestamptz)
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
  v_after bigint[] := array_fill(NULL::bigint, ARRAY[cardinality(p_users)]);
  v_held bigint[] := array_fill(NULL::bigint, ARRAY[cardinality(p_users)]);
  v_user text;
  v_balance bigint;
  v_count integer := 0;
  v_ids uuid[];
  r record;
BEGIN
  -- Small groups reuse the connection's cached generic plans; large ones are planned for their size (0009).
  IF cardinality(p_users) <= 64 THEN
    PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
  END IF;
  PERFORM 1 FROM accounts a WHERE a.user_id = ANY (p_users) ORDER BY a.user_id FOR UPDATE;
  -- ledger_charge's test, charge after charge: the account exists, has no period reset or grant
  -- expiry due, and its balance less its holds covers the charge.
  FOR r IN
    SELECT i.ord, i.u, i.amount, a.balance_nanos, a.held_nanos,
           coalesce(a.period_end > now() AND (a.next_expiry_at IS NULL OR a.next_expiry_at > now()), false) AS fast
      FROM unnest(p_users, p_amounts) WITH ORDINALITY AS i(u, amount, ord)
      LEFT JOIN accounts a ON a.user_id = i.u
     ORDER BY i.u, i.ord
  LOOP
    IF r.u IS DISTINCT FROM v_user THEN
      v_user := r.u;
      v_balance := r.balance_nanos;
    END IF;
    IF r.fast AND v_balance - r.held_nanos >= r.amount THEN
      v_balance := v_balance - r.amount;
      v_after[r.ord] := v_balance;
      v_held[r.ord] := r.held_nanos;
      v_count := v_count + 1;
    END IF;
  END LOOP;
  -- The group's transaction ids, handed out ascending in input order (uuid_v7 alone orders by millisecond only).
  SELECT array_agg(g.id ORDER BY g.id) INTO v_ids FROM (SELECT uuid_v7() AS id FROM generate_series(1, v_count)) g;

  UPDATE accounts a SET balance_nanos = a.balance_nanos - s.total
    FROM (SELECT i.u, sum(i.amount)::bigint AS total
            FROM unnest(p_users, p_amounts) WITH ORDINALITY AS i(u, amount, ord)
           WHERE v_after[i.ord] IS NOT NULL GROUP BY i.u) s
   WHERE a.user_id = s.u;
  PERFORM spend_grants_of_many(array_agg(s.u ORDER BY s.u), array_agg(s.total ORDER BY s.u), false)
     FROM (SELECT i.u, sum(i.amount)::bigint AS total
             FROM unnest(p_users, p_amounts) WITH ORDINALITY AS i(u, amount, ord)
            WHERE v_after[i.ord] IS NOT NULL GROUP BY i.u) s
   HAVING count(*) > 0;

  RETURN QUERY
  WITH added AS (
    INSERT INTO transactions AS t (transaction_id, user_id, kind, amount_nanos, debit_account, credit_account,
                                   balance_after_nanos, request_id, fingerprint, actor_subject, actor_role, reason,
                                   service, model, reference_id, price_version)
    SELECT v_ids[row_number() OVER (ORDER BY i.ord)], i.u, 'DEDUCTION', i.amount, 'user:' || i.u,
           'platform:revenue', v_after[i.ord], i.rid, i.fp,
           i.subject, i.role, i.reason, i.service, i.model, i.ref, i.version
      FROM unnest(p_users, p_amounts, p_request_ids, p_fingerprints, p_subjects, p_roles, p_reasons, p_services,
                  p_models, p_refs, p_versions)
           WITH ORDINALITY AS i(u, amount, rid, fp, subject, role, reason, service, model, ref, version, ord)
     WHERE v_after[i.ord] IS NOT NULL
     ORDER BY i.ord
    RETURNING t.user_id, t.request_id, t.transaction_id, t.created_at
  )
  SELECT i.ord, CASE WHEN d.transaction_id IS NULL THEN 'SLOW_PATH' ELSE 'OK' END, d.transaction_id,
         v_after[i.ord], v_held[i.ord], d.created_at
    FROM unnest(p_users, p_request_ids) WITH ORDINALITY AS i(u, rid, ord)
    LEFT JOIN added d ON d.user_id = i.u AND d.request_id = i.rid
   ORDER BY i.ord;
END $$;
