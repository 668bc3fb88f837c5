-- Real-time balance for WatchBalance: every committed change to an account's
-- balance, holds or tier sends a notification on channel "balance_<schema>"
-- whose payload is the user id. PostgreSQL delivers it at commit (never for a
-- rolled-back change) and folds repeats within one transaction into one, so a
-- coalesced batch of charges costs one notification. Each credits process
-- keeps one LISTEN connection and fans out to its watchers; nobody polls.
CREATE FUNCTION accounts_notify_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('balance_' || current_schema(), NEW.user_id);
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
