-- Tier changes get an id, so that a change can later be undone only while it
-- is still the account's latest one (a trial's revert must not undo a tier the
-- user bought since). accounts.tier_change_id is the latest change's id ('' for
-- an account created on the default tier and never changed); tier_changes is
-- the append-only history (who, why, from, to).
ALTER TABLE accounts ADD COLUMN tier_change_id text NOT NULL DEFAULT '';

CREATE TABLE tier_changes (
    user_id text NOT NULL,
    change_id text NOT NULL,
    previous_tier text NOT NULL,
    tier text NOT NULL,
    request_id text NOT NULL,
    actor text NOT NULL,
    reason text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (user_id, change_id)
);
