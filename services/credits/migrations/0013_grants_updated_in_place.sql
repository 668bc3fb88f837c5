-- Spending a grant no longer moves it in any index. grants_spendable (0001)
-- was a partial index WHERE remaining_nanos > 0, and PostgreSQL cannot update a
-- row in place (a HOT update) when a column an index depends on changes, its
-- predicate included: every spend wrote a new entry into each of the table's
-- indexes (pg_stat_user_tables on the bench database: 115,188 grant updates, 0
-- HOT). The index now covers every grant of an account, spent or not; readers
-- already filter on remaining_nanos, and an account's grants are few (a tier
-- allocation per period, coupons, admin grants, refunds).
-- Measured statement by statement inside ledger_charge_usage_batch (1,000 items
-- over 300 accounts, bench database, VACUUM before each, two rounds each):
-- spending the grants took 5.2 / 5.0 ms before and 3.5 / 3.5 ms after, the whole
-- call 31.4 / 32.9 ms before and 29.4 / 29.1 ms after; the updates that followed
-- were HOT.
DROP INDEX grants_spendable;
CREATE INDEX grants_by_user_expiry ON grants (user_id, expires_at, grant_id);
