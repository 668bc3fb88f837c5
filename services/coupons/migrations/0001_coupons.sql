-- Coupons and their redemptions. A redemption is counted here (PENDING) before
-- its grant is made in the credits service with the redemption id as the
-- credits request_id; it becomes COMPLETED once the grant is confirmed, or
-- FAILED (and uncounted) if the grant is refused for good.

CREATE TABLE coupons (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z0-9_-]{3,64}$'),
    description text NOT NULL DEFAULT '',
    kind text NOT NULL CHECK (kind IN ('CREDIT_GRANT', 'TIER_TRIAL')),
    credit_amount_nanos bigint NOT NULL DEFAULT 0 CHECK (credit_amount_nanos >= 0),
    credit_expiry_days integer NOT NULL DEFAULT 0 CHECK (credit_expiry_days >= 0),
    trial_tier text NOT NULL DEFAULT '',
    trial_days integer NOT NULL DEFAULT 0 CHECK (trial_days >= 0),
    valid_from timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    max_redemptions bigint NOT NULL DEFAULT 0 CHECK (max_redemptions >= 0),
    per_user_limit integer NOT NULL DEFAULT 1 CHECK (per_user_limit >= 1),
    eligible_tiers text[] NOT NULL DEFAULT '{}',
    first_time_only boolean NOT NULL DEFAULT false,
    disabled boolean NOT NULL DEFAULT false,
    redemption_count bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by text NOT NULL,
    request_id text NOT NULL UNIQUE,
    fingerprint text NOT NULL,
    CONSTRAINT count_within_cap CHECK (redemption_count >= 0 AND (max_redemptions = 0 OR redemption_count <= max_redemptions)),
    CONSTRAINT grant_matches_kind CHECK (
        (kind = 'CREDIT_GRANT' AND credit_amount_nanos > 0)
        OR (kind = 'TIER_TRIAL' AND trial_tier <> '' AND trial_days > 0))
);
CREATE INDEX coupons_newest ON coupons (created_at DESC, code);

CREATE TABLE redemptions (
    redemption_id uuid PRIMARY KEY,
    code text NOT NULL REFERENCES coupons (code),
    user_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
    request_id text NOT NULL,
    fingerprint text NOT NULL,
    kind text NOT NULL,
    credits_nanos bigint NOT NULL DEFAULT 0,
    credits_expire_at timestamptz,
    trial_tier text NOT NULL DEFAULT '',
    trial_days integer NOT NULL DEFAULT 0,
    trial_ends_at timestamptz,
    previous_tier text NOT NULL DEFAULT '',
    transaction_id text NOT NULL DEFAULT '',
    balance_after_nanos bigint NOT NULL DEFAULT 0,
    grant_attempts integer NOT NULL DEFAULT 0,
    last_error text NOT NULL DEFAULT '',
    reverted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at timestamptz
);
CREATE UNIQUE INDEX redemptions_request_id ON redemptions (user_id, request_id);
CREATE INDEX redemptions_by_user ON redemptions (user_id, redemption_id DESC);
CREATE INDEX redemptions_by_code ON redemptions (code, user_id) WHERE status <> 'FAILED';
CREATE INDEX redemptions_pending ON redemptions (created_at) WHERE status = 'PENDING';
CREATE INDEX redemptions_trials_due ON redemptions (trial_ends_at)
    WHERE kind = 'TIER_TRIAL' AND status = 'COMPLETED' AND reverted_at IS NULL;

-- Refused validations and redemptions, for the per-user attempt limit.
CREATE TABLE failed_attempts (
    user_id text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    reason text NOT NULL
);
CREATE INDEX failed_attempts_by_user ON failed_attempts (user_id, at);

-- The redemption rules, in one place, for validation and for the claim.
-- Order matters: the most specific reason a person can act on comes first.
CREATE FUNCTION coupon_refusal(c coupons, p_user text, p_tier text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF c.disabled THEN RETURN 'COUPON_DISABLED'; END IF;
  IF c.valid_from > clock_timestamp() THEN RETURN 'COUPON_NOT_YET_VALID'; END IF;
  IF c.expires_at IS NOT NULL AND c.expires_at <= clock_timestamp() THEN RETURN 'COUPON_EXPIRED'; END IF;
  IF (SELECT count(*) FROM redemptions r
       WHERE r.code = c.code AND r.user_id = p_user AND r.status <> 'FAILED') >= c.per_user_limit THEN
    RETURN 'COUPON_ALREADY_REDEEMED';
  END IF;
  IF c.max_redemptions > 0 AND c.redemption_count >= c.max_redemptions THEN RETURN 'COUPON_EXHAUSTED'; END IF;
  IF (cardinality(c.eligible_tiers) > 0 AND NOT (p_tier = ANY (c.eligible_tiers)))
     OR (c.kind = 'TIER_TRIAL' AND p_tier = c.trial_tier) THEN
    RETURN 'COUPON_TIER_NOT_ELIGIBLE';
  END IF;
  IF c.first_time_only AND EXISTS (SELECT 1 FROM redemptions r WHERE r.user_id = p_user AND r.status <> 'FAILED') THEN
    RETURN 'COUPON_FIRST_TIME_ONLY';
  END IF;
  RETURN '';
END $$;

-- Claims one redemption in one round trip. Takes the user's advisory lock and
-- then the coupon's row lock (the fixed order every claim uses), re-checks the
-- rules on fresh data, counts the redemption and records it PENDING. Returns
-- '' on success or the refusal reason; a reused request id raises
-- unique_violation.
CREATE FUNCTION coupon_claim(
    p_code text, p_user text, p_tier text, p_redemption uuid, p_request_id text, p_fingerprint text
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  c coupons%ROWTYPE;
  v_refusal text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('coupon-user:' || p_user, 0));
  SELECT * INTO c FROM coupons WHERE code = p_code FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'COUPON_NOT_FOUND';
  END IF;
  v_refusal := coupon_refusal(c, p_user, p_tier);
  IF v_refusal <> '' THEN
    RETURN v_refusal;
  END IF;
  UPDATE coupons SET redemption_count = redemption_count + 1 WHERE code = p_code;
  INSERT INTO redemptions (redemption_id, code, user_id, status, request_id, fingerprint, kind, credits_nanos,
                           credits_expire_at, trial_tier, trial_days, trial_ends_at)
  VALUES (p_redemption, p_code, p_user, 'PENDING', p_request_id, p_fingerprint, c.kind, c.credit_amount_nanos,
          CASE WHEN c.kind = 'CREDIT_GRANT' AND c.credit_expiry_days > 0
               THEN clock_timestamp() + make_interval(days => c.credit_expiry_days) END,
          c.trial_tier, c.trial_days,
          CASE WHEN c.kind = 'TIER_TRIAL' THEN clock_timestamp() + make_interval(days => c.trial_days) END);
  RETURN '';
END $$;
