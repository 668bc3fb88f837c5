-- The credits ledger: tiers, accounts, grants, transactions (transfers), holds.
-- All money is bigint nano-USD. Platform accounts (platform:grants,
-- platform:revenue, platform:promotions, platform:expired) have no stored
-- balance: theirs is derived by aggregating transactions, so no single row
-- serialises every user's spending.

-- Time-ordered UUIDs (RFC 9562 version 7): 48-bit Unix milliseconds, then random bits.
-- set_bit numbers bits least-significant first within each byte: bits 52-55 are
-- the high nibble of byte 6, the version (0111).
CREATE FUNCTION uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1), 54, 1), 55, 0),
    'hex')::uuid
$$;

CREATE TABLE tiers (
    tier_id text PRIMARY KEY,
    display_name text NOT NULL,
    sort_order integer NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    billing_period text NOT NULL CHECK (billing_period IN ('week', 'month')),
    credits_nanos bigint NOT NULL CHECK (credits_nanos >= 0),
    api_call_limit bigint NOT NULL CHECK (api_call_limit >= 0),
    api_call_period text NOT NULL CHECK (api_call_period IN ('day', 'month')),
    byok_allowed boolean NOT NULL,
    markup_bps integer NOT NULL CHECK (markup_bps >= 0),
    byok_markup_bps integer NOT NULL CHECK (byok_markup_bps >= 0),
    free_model_fee_per_1k_tokens_nanos bigint NOT NULL CHECK (free_model_fee_per_1k_tokens_nanos >= 0),
    features text[] NOT NULL DEFAULT '{}'
);

INSERT INTO tiers VALUES
  ('trial', 'Trial', 1, 400, 'week', 1000000000, 100, 'day', false, 1000, 1000, 1000000,
   ARRAY['$1 of platform credits every week', '100 API calls per day', 'Auto-created OpenRouter key', '10% markup on paid models']),
  ('starter', 'Starter', 2, 1900, 'month', 20000000000, 1000, 'month', true, 1000, 1000, 1000000,
   ARRAY['$20 of platform credits every month', '1,000 API calls per month', 'Bring your own OpenRouter key', '10% markup on paid models']),
  ('professional', 'Professional', 3, 4900, 'month', 60000000000, 10000, 'month', true, 500, 0, 1000000,
   ARRAY['$60 of platform credits every month', '10,000 API calls per month', 'Bring your own key with 0% markup', '5% markup on paid models']),
  ('enterprise', 'Enterprise', 4, 9900, 'month', 999999990000000, 0, 'month', true, 0, 0, 0,
   ARRAY['$999,999.99 of platform credits every month', 'Unlimited API calls', 'Bring your own key with 0% markup', 'No markup, no free-model fee']);

CREATE TABLE accounts (
    user_id text PRIMARY KEY,
    tier_id text NOT NULL REFERENCES tiers (tier_id),
    balance_nanos bigint NOT NULL DEFAULT 0,
    held_nanos bigint NOT NULL DEFAULT 0,
    -- Billing periods step from the anchor: anchor + k weeks or anchor + k months.
    period_anchor timestamptz NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    -- The soonest expiry among grants with something left (NULL: none). Lets the
    -- hot path know, from the row it already updates, that no grant is due.
    next_expiry_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT balance_not_negative CHECK (balance_nanos >= 0),
    CONSTRAINT held_within_balance CHECK (held_nanos >= 0 AND held_nanos <= balance_nanos),
    CONSTRAINT period_ordered CHECK (period_end > period_start)
);
CREATE INDEX accounts_period_end ON accounts (period_end);
CREATE INDEX accounts_next_expiry ON accounts (next_expiry_at) WHERE next_expiry_at IS NOT NULL;

-- Transfers between two accounts. Immutable (see the trigger below).
CREATE TABLE transactions (
    transaction_id uuid PRIMARY KEY DEFAULT uuid_v7(),
    user_id text NOT NULL REFERENCES accounts (user_id),
    kind text NOT NULL CHECK (kind IN ('TIER_ALLOCATION', 'ALLOCATION', 'DEDUCTION', 'HOLD_CAPTURE', 'REFUND', 'EXPIRY')),
    amount_nanos bigint NOT NULL CHECK (amount_nanos > 0),
    debit_account text NOT NULL,
    credit_account text NOT NULL,
    balance_after_nanos bigint NOT NULL CHECK (balance_after_nanos >= 0),
    request_id text,
    fingerprint text,
    related_transaction_id uuid REFERENCES transactions (transaction_id),
    hold_id uuid,
    actor_subject text NOT NULL,
    actor_role text NOT NULL,
    reason text NOT NULL DEFAULT '',
    service text NOT NULL DEFAULT '',
    model text NOT NULL DEFAULT '',
    reference_id text NOT NULL DEFAULT '',
    price_version text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT distinct_accounts CHECK (debit_account <> credit_account),
    CONSTRAINT touches_the_user CHECK (debit_account = 'user:' || user_id OR credit_account = 'user:' || user_id)
);
-- Idempotency keys are permanent and scoped to the account they act on.
CREATE UNIQUE INDEX transactions_request_id ON transactions (user_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX transactions_by_user ON transactions (user_id, transaction_id DESC);
CREATE INDEX transactions_refunds ON transactions (related_transaction_id) WHERE related_transaction_id IS NOT NULL;

CREATE FUNCTION transactions_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger transactions are never updated or deleted' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER transactions_immutable BEFORE UPDATE OR DELETE ON transactions
  FOR EACH ROW EXECUTE FUNCTION transactions_are_immutable();
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
  FOR EACH STATEMENT EXECUTE FUNCTION transactions_are_immutable();

-- Credits arrive as grants; spending draws from the soonest-expiring first.
CREATE TABLE grants (
    grant_id uuid PRIMARY KEY DEFAULT uuid_v7(),
    user_id text NOT NULL REFERENCES accounts (user_id),
    source text NOT NULL CHECK (source IN ('TIER', 'ADMIN', 'COUPON', 'REFUND')),
    amount_nanos bigint NOT NULL CHECK (amount_nanos > 0),
    remaining_nanos bigint NOT NULL,
    expires_at timestamptz,
    -- For TIER grants: the billing period they belong to (one per period).
    period_start timestamptz,
    transaction_id uuid NOT NULL REFERENCES transactions (transaction_id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT remaining_within_amount CHECK (remaining_nanos >= 0 AND remaining_nanos <= amount_nanos),
    CONSTRAINT tier_grants_have_period CHECK ((source = 'TIER') = (period_start IS NOT NULL))
);
CREATE UNIQUE INDEX grants_one_tier_allocation_per_period ON grants (user_id, period_start) WHERE source = 'TIER';
CREATE INDEX grants_spendable ON grants (user_id, expires_at, grant_id) WHERE remaining_nanos > 0;

CREATE TABLE holds (
    hold_id uuid PRIMARY KEY DEFAULT uuid_v7(),
    user_id text NOT NULL REFERENCES accounts (user_id),
    amount_nanos bigint NOT NULL CHECK (amount_nanos > 0),
    captured_nanos bigint NOT NULL DEFAULT 0,
    status text NOT NULL CHECK (status IN ('ACTIVE', 'CAPTURED', 'RELEASED', 'EXPIRED')),
    expires_at timestamptz NOT NULL,
    request_id text NOT NULL,
    fingerprint text NOT NULL,
    settle_request_id text,
    settle_fingerprint text,
    capture_transaction_id uuid REFERENCES transactions (transaction_id),
    reason text NOT NULL DEFAULT '',
    reference_id text NOT NULL DEFAULT '',
    actor_subject text NOT NULL,
    actor_role text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    settled_at timestamptz,
    CONSTRAINT captured_within_amount CHECK (captured_nanos >= 0 AND captured_nanos <= amount_nanos)
);
CREATE UNIQUE INDEX holds_request_id ON holds (user_id, request_id);
CREATE INDEX holds_active ON holds (user_id) WHERE status = 'ACTIVE';
CREATE INDEX holds_active_expiry ON holds (expires_at) WHERE status = 'ACTIVE';

-- Idempotency records for mutating RPCs that are not a single transfer
-- (SetTier, ResetPeriods): the serialized first response, replayed on retry.
CREATE TABLE idempotent_requests (
    scope text NOT NULL,
    request_id text NOT NULL,
    operation text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, request_id)
);

-- Draws p_amount from the user's grants, soonest expiry first (never-expiring
-- last). The caller must hold the account row lock, which serialises every
-- change to that user's grants. Credits past their expiry that are kept only
-- to back active holds are spent by hold captures (p_include_due) and never by
-- direct charges. Raises if the grants cannot cover the amount, which would
-- mean the stored balance and the grants disagree.
CREATE FUNCTION spend_grants(p_user text, p_amount bigint, p_include_due boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_taken bigint;
BEGIN
  WITH ordered AS (
    SELECT grant_id, remaining_nanos,
           sum(remaining_nanos) OVER (ORDER BY expires_at ASC NULLS LAST, grant_id) - remaining_nanos AS before
      FROM grants
     WHERE user_id = p_user AND remaining_nanos > 0
       AND (p_include_due OR expires_at IS NULL OR expires_at > now())
  ), take AS (
    SELECT grant_id, least(remaining_nanos, p_amount - before) AS amount
      FROM ordered
     WHERE before < p_amount
  ), spent AS (
    UPDATE grants g SET remaining_nanos = g.remaining_nanos - take.amount
      FROM take
     WHERE g.grant_id = take.grant_id
    RETURNING take.amount
  )
  SELECT coalesce(sum(amount), 0) INTO v_taken FROM spent;
  IF v_taken <> p_amount THEN
    RAISE EXCEPTION 'grants of % cover % of %', p_user, v_taken, p_amount USING ERRCODE = 'data_exception';
  END IF;
END $$;

-- The hot path of a charge: one round trip, no lock held across the network.
-- Returns status 'OK' with the new transaction, or 'SLOW_PATH' without
-- changing anything when the account is missing, short of funds, or has a
-- period reset, grant expiry or stale hold due (the caller then runs account
-- maintenance and decides). A reused request id raises unique_violation.
CREATE FUNCTION ledger_charge(
    p_user text, p_amount bigint, p_request_id text, p_fingerprint text,
    p_actor_subject text, p_actor_role text, p_reason text, p_service text,
    p_model text, p_reference_id text, p_price_version text
) RETURNS TABLE (status text, transaction_id uuid, balance_after bigint, held bigint, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
  v_balance bigint;
  v_held bigint;
  v_tx uuid;
  v_at timestamptz;
BEGIN
  UPDATE accounts a
     SET balance_nanos = a.balance_nanos - p_amount
   WHERE a.user_id = p_user
     AND a.balance_nanos - a.held_nanos >= p_amount
     AND a.period_end > now()
     AND (a.next_expiry_at IS NULL OR a.next_expiry_at > now())
  RETURNING a.balance_nanos, a.held_nanos INTO v_balance, v_held;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'SLOW_PATH'::text, NULL::uuid, NULL::bigint, NULL::bigint, NULL::timestamptz;
    RETURN;
  END IF;
  PERFORM spend_grants(p_user, p_amount, false);
  INSERT INTO transactions AS t (user_id, kind, amount_nanos, debit_account, credit_account, balance_after_nanos,
                                 request_id, fingerprint, actor_subject, actor_role, reason, service, model,
                                 reference_id, price_version)
  VALUES (p_user, 'DEDUCTION', p_amount, 'user:' || p_user, 'platform:revenue', v_balance,
          p_request_id, p_fingerprint, p_actor_subject, p_actor_role, p_reason, p_service, p_model,
          p_reference_id, p_price_version)
  RETURNING t.transaction_id, t.created_at INTO v_tx, v_at;
  RETURN QUERY SELECT 'OK'::text, v_tx, v_balance, v_held, v_at;
END $$;

-- Places a hold in one round trip; 'SLOW_PATH' as for ledger_charge.
CREATE FUNCTION ledger_hold(
    p_user text, p_amount bigint, p_ttl_seconds integer, p_request_id text, p_fingerprint text,
    p_actor_subject text, p_actor_role text, p_reason text, p_reference_id text
) RETURNS TABLE (status text, hold_id uuid, balance_after bigint, held bigint, expires_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
  v_balance bigint;
  v_held bigint;
  v_hold uuid;
  v_expires timestamptz;
  v_at timestamptz;
BEGIN
  UPDATE accounts a
     SET held_nanos = a.held_nanos + p_amount
   WHERE a.user_id = p_user
     AND a.balance_nanos - a.held_nanos >= p_amount
     AND a.period_end > now()
     AND (a.next_expiry_at IS NULL OR a.next_expiry_at > now())
  RETURNING a.balance_nanos, a.held_nanos INTO v_balance, v_held;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'SLOW_PATH'::text, NULL::uuid, NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;
  INSERT INTO holds AS h (user_id, amount_nanos, status, expires_at, request_id, fingerprint, reason, reference_id,
                          actor_subject, actor_role)
  VALUES (p_user, p_amount, 'ACTIVE', clock_timestamp() + make_interval(secs => p_ttl_seconds), p_request_id,
          p_fingerprint, p_reason, p_reference_id, p_actor_subject, p_actor_role)
  RETURNING h.hold_id, h.expires_at, h.created_at INTO v_hold, v_expires, v_at;
  RETURN QUERY SELECT 'OK'::text, v_hold, v_balance, v_held, v_expires, v_at;
END $$;

-- Settles a hold in one round trip: p_capture NULL releases it, otherwise
-- p_capture nanos (0 ≤ p_capture ≤ held amount) are charged and the rest
-- released. Locks the account first, then the hold (the fixed order every
-- writer uses). Statuses: OK, REPLAY (already settled by this request id),
-- HOLD_NOT_FOUND, HOLD_EXPIRED, HOLD_ALREADY_SETTLED, CAPTURE_EXCEEDS_HOLD.
CREATE FUNCTION ledger_settle_hold(
    p_hold uuid, p_capture bigint, p_request_id text, p_fingerprint text,
    p_actor_subject text, p_actor_role text, p_reason text, p_service text,
    p_model text, p_reference_id text, p_price_version text
) RETURNS TABLE (status text, user_id text, transaction_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
  v_user text;
  h holds%ROWTYPE;
  v_balance bigint;
  v_tx uuid;
BEGIN
  SELECT hh.user_id INTO v_user FROM holds hh WHERE hh.hold_id = p_hold;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'HOLD_NOT_FOUND'::text, NULL::text, NULL::uuid;
    RETURN;
  END IF;
  PERFORM 1 FROM accounts a WHERE a.user_id = v_user FOR UPDATE;
  SELECT * INTO h FROM holds hh WHERE hh.hold_id = p_hold FOR UPDATE;
  IF h.status <> 'ACTIVE' THEN
    IF h.settle_request_id = p_request_id THEN
      RETURN QUERY SELECT 'REPLAY'::text, v_user, h.capture_transaction_id;
    ELSIF h.status = 'EXPIRED' AND p_capture IS NULL AND h.settle_request_id IS NULL THEN
      -- Releasing a hold the sweeper already expired succeeds (it reports EXPIRED).
      UPDATE holds SET settle_request_id = p_request_id, settle_fingerprint = p_fingerprint WHERE holds.hold_id = p_hold;
      RETURN QUERY SELECT 'OK'::text, v_user, NULL::uuid;
    ELSIF h.status = 'EXPIRED' THEN
      RETURN QUERY SELECT 'HOLD_EXPIRED'::text, v_user, NULL::uuid;
    ELSE
      RETURN QUERY SELECT 'HOLD_ALREADY_SETTLED'::text, v_user, NULL::uuid;
    END IF;
    RETURN;
  END IF;
  IF h.expires_at <= clock_timestamp() THEN
    -- Expire it now; the expiry commits even though the capture is refused.
    UPDATE holds SET status = 'EXPIRED', settled_at = clock_timestamp() WHERE holds.hold_id = p_hold;
    UPDATE accounts a SET held_nanos = a.held_nanos - h.amount_nanos WHERE a.user_id = v_user;
    IF p_capture IS NULL THEN
      UPDATE holds SET settle_request_id = p_request_id, settle_fingerprint = p_fingerprint WHERE holds.hold_id = p_hold;
      RETURN QUERY SELECT 'OK'::text, v_user, NULL::uuid;
    ELSE
      RETURN QUERY SELECT 'HOLD_EXPIRED'::text, v_user, NULL::uuid;
    END IF;
    RETURN;
  END IF;
  IF p_capture IS NOT NULL AND p_capture > h.amount_nanos THEN
    RETURN QUERY SELECT 'CAPTURE_EXCEEDS_HOLD'::text, v_user, NULL::uuid;
    RETURN;
  END IF;
  UPDATE accounts a
     SET held_nanos = a.held_nanos - h.amount_nanos,
         balance_nanos = a.balance_nanos - coalesce(p_capture, 0)
   WHERE a.user_id = v_user
  RETURNING a.balance_nanos INTO v_balance;
  IF coalesce(p_capture, 0) > 0 THEN
    PERFORM spend_grants(v_user, p_capture, true);
    INSERT INTO transactions AS t (user_id, kind, amount_nanos, debit_account, credit_account, balance_after_nanos,
                                   request_id, fingerprint, hold_id, actor_subject, actor_role, reason, service,
                                   model, reference_id, price_version)
    VALUES (v_user, 'HOLD_CAPTURE', p_capture, 'user:' || v_user, 'platform:revenue', v_balance,
            p_request_id, p_fingerprint, p_hold, p_actor_subject, p_actor_role, p_reason, p_service,
            p_model, p_reference_id, p_price_version)
    RETURNING t.transaction_id INTO v_tx;
  END IF;
  UPDATE holds
     SET status = CASE WHEN p_capture IS NULL THEN 'RELEASED' ELSE 'CAPTURED' END,
         captured_nanos = coalesce(p_capture, 0),
         capture_transaction_id = v_tx,
         settle_request_id = p_request_id,
         settle_fingerprint = p_fingerprint,
         settled_at = clock_timestamp()
   WHERE holds.hold_id = p_hold;
  -- Credits kept past their expiry to back this hold may now expire: make the
  -- next charge take the slow path, which expires them.
  UPDATE accounts a
     SET next_expiry_at = (SELECT min(g.expires_at) FROM grants g WHERE g.user_id = v_user AND g.remaining_nanos > 0)
   WHERE a.user_id = v_user;
  RETURN QUERY SELECT 'OK'::text, v_user, v_tx;
END $$;
