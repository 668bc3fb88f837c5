-- Attempt limits that hold under concurrency, and trials that revert safely.

-- One counter per limited subject ('user:<id>' or 'ip:<address>') and fixed
-- window. A guess takes a unit with one conditional upsert (check and
-- increment in one statement, under the row's lock), so parallel guesses can
-- never exceed the limit; an attempt that turns out to be allowed gives its
-- unit back. Replaces the per-attempt log, whose count-then-insert let
-- parallel guesses through.
CREATE TABLE attempt_counters (
    subject text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    attempts integer NOT NULL CHECK (attempts >= 0)
);
DROP TABLE failed_attempts;

-- Takes one attempt for p_subject if fewer than p_limit were taken in the
-- current window (a window that has ended starts afresh). Returns the window the
-- attempt was counted in (to give it back to that window only) and 0, or, when
-- the limit is reached, NULL and the seconds until the window ends (at least 1).
-- Counter writes commit without waiting for the WAL flush (synchronous_commit
-- off, for this transaction only): they are throttling state, not money, and a
-- crash that forgets the last few milliseconds of attempts is harmless, while
-- a disk sync per guess would make every redemption pay two extra syncs.
CREATE FUNCTION attempt_take(p_subject text, p_limit integer, p_window_seconds integer,
                             OUT window_start timestamptz, OUT wait_seconds integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_window interval := make_interval(secs => p_window_seconds);
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  wait_seconds := 0;
  INSERT INTO attempt_counters AS a (subject, window_start, attempts)
  VALUES (p_subject, clock_timestamp(), 1)
  ON CONFLICT (subject) DO UPDATE
     SET window_start = CASE WHEN a.window_start + v_window <= clock_timestamp()
                             THEN clock_timestamp() ELSE a.window_start END,
         attempts = CASE WHEN a.window_start + v_window <= clock_timestamp() THEN 1 ELSE a.attempts + 1 END
   WHERE a.window_start + v_window <= clock_timestamp() OR a.attempts < p_limit
  RETURNING a.window_start INTO window_start;
  IF FOUND THEN
    RETURN;
  END IF;
  SELECT greatest(1, ceil(extract(epoch FROM (c.window_start + v_window - clock_timestamp()))))::integer
    INTO wait_seconds FROM attempt_counters c WHERE c.subject = p_subject;
END $$;

-- Gives back an attempt taken in window p_window (an allowed attempt does not
-- count); a window that has been replaced since is left alone.
CREATE FUNCTION attempt_give_back(p_subject text, p_window timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  UPDATE attempt_counters SET attempts = attempts - 1
   WHERE subject = p_subject AND window_start = p_window AND attempts > 0;
END $$;

-- Trials: the credits tier change a trial made (its change id; the revert is
-- conditional on it still being the account's latest change), the running
-- trial a stacking trial replaced, and the retry state of a failing revert
-- (so one failing revert is retried later without holding up the others).
ALTER TABLE coupons ADD COLUMN stacks_on_trial boolean NOT NULL DEFAULT false;
ALTER TABLE redemptions
    ADD COLUMN trial_change_id text NOT NULL DEFAULT '',
    ADD COLUMN supersedes uuid,
    ADD COLUMN revert_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN revert_after timestamptz,
    ADD COLUMN revert_note text NOT NULL DEFAULT '';
DROP INDEX redemptions_trials_due;
CREATE INDEX redemptions_trials_due ON redemptions (coalesce(revert_after, trial_ends_at))
    WHERE kind = 'TIER_TRIAL' AND status = 'COMPLETED' AND reverted_at IS NULL;
CREATE INDEX redemptions_open_trials ON redemptions (user_id)
    WHERE kind = 'TIER_TRIAL' AND status <> 'FAILED' AND reverted_at IS NULL;

-- The redemption rules, now with one trial at a time.
CREATE OR REPLACE FUNCTION coupon_refusal(c coupons, p_user text, p_tier text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_open redemptions%ROWTYPE;
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
  IF c.kind = 'TIER_TRIAL' THEN
    -- A trial that has not been reverted yet (running, or ended with its revert
    -- still to come) is open; a pending one cannot be stacked on (its base tier
    -- is not known yet).
    SELECT * INTO v_open FROM redemptions r
     WHERE r.user_id = p_user AND r.kind = 'TIER_TRIAL' AND r.status <> 'FAILED' AND r.reverted_at IS NULL
     ORDER BY r.redemption_id DESC LIMIT 1;
    IF FOUND AND (NOT c.stacks_on_trial OR v_open.status = 'PENDING' OR v_open.trial_ends_at <= clock_timestamp()) THEN
      RETURN 'COUPON_TRIAL_ACTIVE';
    END IF;
  END IF;
  IF c.first_time_only AND EXISTS (SELECT 1 FROM redemptions r WHERE r.user_id = p_user AND r.status <> 'FAILED') THEN
    RETURN 'COUPON_FIRST_TIME_ONLY';
  END IF;
  RETURN '';
END $$;

-- The claim, now recording which running trial a stacking trial replaces and
-- the tier the user returns to at its end (the replaced trial's).
CREATE OR REPLACE FUNCTION coupon_claim(
    p_code text, p_user text, p_tier text, p_redemption uuid, p_request_id text, p_fingerprint text
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  c coupons%ROWTYPE;
  v_refusal text;
  v_open redemptions%ROWTYPE;
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
  IF c.kind = 'TIER_TRIAL' THEN
    SELECT * INTO v_open FROM redemptions r
     WHERE r.user_id = p_user AND r.kind = 'TIER_TRIAL' AND r.status = 'COMPLETED' AND r.reverted_at IS NULL
     ORDER BY r.redemption_id DESC LIMIT 1;
  END IF;
  UPDATE coupons SET redemption_count = redemption_count + 1 WHERE code = p_code;
  INSERT INTO redemptions (redemption_id, code, user_id, status, request_id, fingerprint, kind, credits_nanos,
                           credits_expire_at, trial_tier, trial_days, trial_ends_at, supersedes, previous_tier)
  VALUES (p_redemption, p_code, p_user, 'PENDING', p_request_id, p_fingerprint, c.kind, c.credit_amount_nanos,
          CASE WHEN c.kind = 'CREDIT_GRANT' AND c.credit_expiry_days > 0
               THEN clock_timestamp() + make_interval(days => c.credit_expiry_days) END,
          c.trial_tier, c.trial_days,
          CASE WHEN c.kind = 'TIER_TRIAL' THEN clock_timestamp() + make_interval(days => c.trial_days) END,
          v_open.redemption_id, coalesce(v_open.previous_tier, ''));
  RETURN '';
END $$;
