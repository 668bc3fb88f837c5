-- First responses of admin changes that create no row of their own (today:
-- RetryParkedEvents), kept by request id (AIP-155; see
-- services/common/idempotency.StoredResponses, the same table in coupons and
-- openrouter). Request ids are scoped to the caller (token subject).
CREATE TABLE stored_responses (
    caller text NOT NULL,
    request_id text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, request_id)
);
