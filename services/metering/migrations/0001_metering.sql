-- Usage events (each recorded once, forever, by event_id), daily rollups kept
-- in the same transactions as the events they count, quota windows, and the
-- results of Authorize calls (for idempotent replay).

CREATE TABLE events (
    event_id text PRIMARY KEY,
    user_id text NOT NULL,
    service text NOT NULL CHECK (service IN ('LLM', 'TTS', 'STT', 'EMBEDDING', 'SEARCH', 'AGENT')),
    model text NOT NULL DEFAULT '',
    provider text NOT NULL DEFAULT '',
    input_tokens bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    quantity bigint NOT NULL DEFAULT 0 CHECK (quantity >= 0),
    byok boolean NOT NULL DEFAULT false,
    hold_id text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    fingerprint text NOT NULL,
    cost_nanos bigint NOT NULL CHECK (cost_nanos >= 0),
    price_version text NOT NULL,
    -- RECORDED until the ledger confirms the charge; the recovery pass charges it then.
    status text NOT NULL CHECK (status IN ('RECORDED', 'CHARGED')),
    charged_nanos bigint NOT NULL DEFAULT 0,
    shortfall_nanos bigint NOT NULL DEFAULT 0,
    transaction_id text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    charged_at timestamptz,
    CONSTRAINT charge_adds_up CHECK (status = 'RECORDED' OR charged_nanos + shortfall_nanos = cost_nanos)
);
CREATE INDEX events_by_user ON events (user_id, recorded_at DESC, event_id DESC);
CREATE INDEX events_uncharged ON events (recorded_at) WHERE status = 'RECORDED';

CREATE TABLE daily_usage (
    user_id text NOT NULL,
    day date NOT NULL,
    service text NOT NULL,
    model text NOT NULL,
    event_count bigint NOT NULL DEFAULT 0,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    quantity bigint NOT NULL DEFAULT 0,
    cost_nanos bigint NOT NULL DEFAULT 0,
    charged_nanos bigint NOT NULL DEFAULT 0,
    shortfall_nanos bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, service, model)
);

CREATE TABLE quota_windows (
    user_id text NOT NULL,
    window_start timestamptz NOT NULL,
    calls bigint NOT NULL DEFAULT 0 CHECK (calls >= 0),
    PRIMARY KEY (user_id, window_start)
);

CREATE TABLE authorizations (
    user_id text NOT NULL,
    request_id text NOT NULL,
    fingerprint text NOT NULL,
    response bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, request_id)
);
