-- Authorize's first step (replay, or count the call in its quota window) as a
-- function, so that the steps of concurrent Authorize calls can run together in
-- one statement: one call per step, in the given order, each seeing the ones
-- before it (services/common/batching.py, Grouper). Same rules as the single
-- statement it replaces (repository.begin_authorization before this change):
--   * a request id already answered: its fingerprint and answer (replay),
--     nothing counted;
--   * otherwise the call is counted when the window stays within p_limit
--     (0 = unlimited): counted = the window's calls after counting, or NULL
--     when over the limit;
--   * current = the window's calls before this step.
CREATE FUNCTION begin_authorization(p_user text, p_request_id text, p_window timestamptz, p_limit bigint)
RETURNS TABLE (fingerprint text, response bytea, counted bigint, current bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_fp text;
  v_response bytea;
  v_current bigint;
  v_counted bigint;
BEGIN
  SELECT a.fingerprint, a.response INTO v_fp, v_response
    FROM authorizations a WHERE a.user_id = p_user AND a.request_id = p_request_id;
  SELECT coalesce(max(q.calls), 0) INTO v_current
    FROM quota_windows q WHERE q.user_id = p_user AND q.window_start = p_window;
  IF v_fp IS NOT NULL THEN
    RETURN QUERY SELECT v_fp, v_response, NULL::bigint, v_current;
    RETURN;
  END IF;
  INSERT INTO quota_windows AS q (user_id, window_start, calls) VALUES (p_user, p_window, 1)
  ON CONFLICT (user_id, window_start) DO UPDATE SET calls = q.calls + 1
   WHERE p_limit = 0 OR q.calls < p_limit
  RETURNING q.calls INTO v_counted;
  RETURN QUERY SELECT NULL::text, NULL::bytea, v_counted, v_current;
END $$;
