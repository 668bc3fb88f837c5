"""The coupons bounded context: promotional codes granting credits or tier trials, with hard caps."""
