"""The credits bounded context: accounts, tiers, the double-entry ledger, grants, holds, periods."""
