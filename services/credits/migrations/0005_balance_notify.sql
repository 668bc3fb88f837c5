-- Real-time balance for WatchBalance. While someone watches an account (a row
-- in balance_watches that has not expired), every committed change to its
-- balance, holds, tier or period sends a notification on channel
-- "balance_<schema>" whose payload is the user id. PostgreSQL delivers it at
-- commit (never for a rolled-back change) and folds repeats within one
-- transaction into one. Unwatched accounts send nothing: NOTIFY serialises the
-- commits of notifying transactions, which the ledger's throughput must not pay
-- for accounts nobody is looking at; the check is one primary-key lookup.
-- Each credits process keeps one LISTEN connection and fans out to its watchers.
CREATE TABLE balance_watches (
    user_id text PRIMARY KEY,
    -- Watchers renew this while their stream is open; past it, nobody is watching.
    expires_at timestamptz NOT NULL
);

CREATE FUNCTION accounts_notify_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM balance_watches w WHERE w.user_id = NEW.user_id AND w.expires_at > now()) THEN
    PERFORM pg_notify('balance_' || current_schema(), NEW.user_id);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER accounts_balance_changed
  AFTER UPDATE OF balance_nanos, held_nanos, tier_id, period_end ON accounts
  FOR EACH ROW
  WHEN (OLD.balance_nanos IS DISTINCT FROM NEW.balance_nanos
        OR OLD.held_nanos IS DISTINCT FROM NEW.held_nanos
        OR OLD.tier_id IS DISTINCT FROM NEW.tier_id
        OR OLD.period_end IS DISTINCT FROM NEW.period_end)
  EXECUTE FUNCTION accounts_notify_balance();
