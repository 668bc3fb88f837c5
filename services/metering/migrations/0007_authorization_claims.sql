-- An Authorize request id counts one call of the quota, however many attempts it
-- takes. Before this, the call was counted by the attempt and the answer stored
-- only at the end: an attempt that died in between (the process killed, the
-- caller gone) left its count behind and the retry counted the call again, and
-- two copies of one request id on two replicas both counted until the loser gave
-- its count back.
--
-- Now the first step claims the request id: a row in `authorizations` without an
-- answer yet, written in the same transaction as the count, and remembering the
-- window it counted in (`counted_in`). Every later attempt with that id finds
-- the claim (locked, so one attempt at a time decides): an answered claim is
-- replayed, a claim with another fingerprint is a reused id, and an unanswered
-- claim that counted carries on without counting again. The last step stores the
-- answer on the claim (first answer wins); a refusal gives the claim's count back
-- in the same statement (an answered claim's `counted_in` keeps the window it
-- counted in; for a refusal, the window the count went back to). An attempt
-- that fails (a dependency away) gives the count back and leaves the claim
-- unanswered, so that its retry counts afresh.
--
-- Cost, measured with `make bench --only tiers_compare,authorize` against the
-- commit before, alternating, two rounds: PostgreSQL's CPU per Authorize rose
-- ~25 % (one claim row written, then updated with the answer, where one answer
-- row used to be inserted); the route's rate stayed within the bench's noise.

ALTER TABLE authorizations ALTER COLUMN response DROP NOT NULL;
ALTER TABLE authorizations ADD COLUMN counted_in timestamptz;

DROP FUNCTION begin_authorization(text, text, timestamptz, bigint);

-- Returns (fingerprint, response) of an answered claim or of a claim with another fingerprint (nothing
-- counted); otherwise NULL, NULL and counted = the window's calls after counting (NULL when over the limit),
-- or, when an earlier attempt of this request id already counted, the window's calls as they are.
-- current = the window's calls before this step.
CREATE FUNCTION begin_authorization(p_user text, p_request_id text, p_window timestamptz, p_limit bigint, p_fp text)
RETURNS TABLE (fingerprint text, response bytea, counted bigint, current bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_fp text;
  v_response bytea;
  v_counted_in timestamptz;
  v_current bigint;
  v_counted bigint;
BEGIN
  SELECT coalesce(max(q.calls), 0) INTO v_current
    FROM quota_windows q WHERE q.user_id = p_user AND q.window_start = p_window;
  SELECT a.fingerprint, a.response, a.counted_in INTO v_fp, v_response, v_counted_in
    FROM authorizations a WHERE a.user_id = p_user AND a.request_id = p_request_id FOR UPDATE;
  IF NOT FOUND THEN
    -- A new request id (the common case): count, then claim with the count, one row written once.
    INSERT INTO quota_windows AS q (user_id, window_start, calls) VALUES (p_user, p_window, 1)
    ON CONFLICT (user_id, window_start) DO UPDATE SET calls = q.calls + 1
     WHERE p_limit = 0 OR q.calls < p_limit
    RETURNING q.calls INTO v_counted;
    INSERT INTO authorizations (user_id, request_id, fingerprint, counted_in)
    VALUES (p_user, p_request_id, p_fp, CASE WHEN v_counted IS NOT NULL THEN p_window END)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      RETURN QUERY SELECT NULL::text, NULL::bytea, v_counted, v_current;
      RETURN;
    END IF;
    -- Another attempt claimed it while this one waited for the quota row: its count stands, not ours.
    IF v_counted IS NOT NULL THEN
      UPDATE quota_windows q SET calls = q.calls - 1 WHERE q.user_id = p_user AND q.window_start = p_window;
    END IF;
    SELECT a.fingerprint, a.response, a.counted_in INTO v_fp, v_response, v_counted_in
      FROM authorizations a WHERE a.user_id = p_user AND a.request_id = p_request_id FOR UPDATE;
  END IF;
  IF v_response IS NOT NULL OR v_fp <> p_fp THEN
    RETURN QUERY SELECT v_fp, v_response, NULL::bigint, v_current;
    RETURN;
  END IF;
  IF v_counted_in IS NOT NULL THEN
    -- An earlier attempt counted this request id and did not answer: carry on, count nothing more.
    RETURN QUERY SELECT NULL::text, NULL::bytea, v_current, v_current;
    RETURN;
  END IF;
  -- An earlier attempt gave its count back (or was over the limit): this one counts afresh.
  INSERT INTO quota_windows AS q (user_id, window_start, calls) VALUES (p_user, p_window, 1)
  ON CONFLICT (user_id, window_start) DO UPDATE SET calls = q.calls + 1
   WHERE p_limit = 0 OR q.calls < p_limit
  RETURNING q.calls INTO v_counted;
  IF v_counted IS NOT NULL THEN
    UPDATE authorizations a SET counted_in = p_window WHERE a.user_id = p_user AND a.request_id = p_request_id;
  END IF;
  RETURN QUERY SELECT NULL::text, NULL::bytea, v_counted, v_current;
END $$;
