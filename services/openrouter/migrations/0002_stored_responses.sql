-- First responses of changes that create no row of their own, kept by request
-- id (AIP-155; see services/common/idempotency.StoredResponses). Request ids
-- are scoped to the caller (token subject); the fingerprint is a digest of
-- the request's meaning, never its secrets in plaintext.
CREATE TABLE stored_responses (
    caller text NOT NULL,
    request_id text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, request_id)
);
