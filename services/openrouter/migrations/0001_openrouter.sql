-- The OpenRouter context: catalog snapshots, the versioned rate card, and
-- users' keys (provisioned and BYOK), encrypted with Fernet — ciphertext only.

-- One row per catalog version; a sync adds a version only when prices changed.
CREATE TABLE catalog_versions (
    version bigint PRIMARY KEY,
    digest text NOT NULL,
    model_count integer NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now()
);

-- Prices as OpenRouter publishes them: exact USD per token (per request, per image).
CREATE TABLE model_prices (
    catalog_version bigint NOT NULL REFERENCES catalog_versions (version),
    model_id text NOT NULL,
    name text NOT NULL,
    context_length bigint NOT NULL,
    prompt_usd numeric NOT NULL CHECK (prompt_usd >= 0),
    completion_usd numeric NOT NULL CHECK (completion_usd >= 0),
    request_usd numeric NOT NULL CHECK (request_usd >= 0),
    image_usd numeric NOT NULL CHECK (image_usd >= 0),
    PRIMARY KEY (catalog_version, model_id)
);

CREATE TABLE rate_cards (
    version bigint PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    request_id text UNIQUE,
    fingerprint text
);

CREATE TABLE rate_card_tiers (
    version bigint NOT NULL REFERENCES rate_cards (version),
    tier text NOT NULL,
    markup_bps integer NOT NULL CHECK (markup_bps >= 0),
    byok_markup_bps integer NOT NULL CHECK (byok_markup_bps >= 0),
    free_fee_per_1k_tokens_nanos bigint NOT NULL CHECK (free_fee_per_1k_tokens_nanos >= 0),
    PRIMARY KEY (version, tier)
);

CREATE TABLE rate_card_units (
    version bigint NOT NULL REFERENCES rate_cards (version),
    service text NOT NULL CHECK (service IN ('TTS', 'STT', 'EMBEDDING', 'SEARCH', 'AGENT')),
    price_nanos bigint NOT NULL CHECK (price_nanos >= 0),
    quantity_per_unit bigint NOT NULL CHECK (quantity_per_unit >= 1),
    unit text NOT NULL,
    PRIMARY KEY (version, service)
);

INSERT INTO rate_cards (version, created_by) VALUES (1, 'migration');
INSERT INTO rate_card_tiers VALUES
  (1, 'trial', 1000, 1000, 1000000),
  (1, 'starter', 1000, 1000, 1000000),
  (1, 'professional', 500, 0, 1000000),
  (1, 'enterprise', 0, 0, 0);
INSERT INTO rate_card_units VALUES
  (1, 'TTS', 15000000, 1000, 'characters'),
  (1, 'STT', 6000000, 60, 'seconds of audio'),
  (1, 'EMBEDDING', 100000, 1000, 'tokens'),
  (1, 'SEARCH', 5000000, 1, 'calls'),
  (1, 'AGENT', 20000000, 1, 'runs');

CREATE TABLE accounts (
    user_id text PRIMARY KEY,
    -- PROVISIONING while one caller creates the key at OpenRouter; ACTIVE once stored.
    status text NOT NULL CHECK (status IN ('PROVISIONING', 'ACTIVE')),
    -- The name the key was created under at OpenRouter (finds an orphan after a crash).
    provision_name text NOT NULL,
    key_hash text NOT NULL DEFAULT '',
    key_ciphertext bytea,
    key_hint text NOT NULL DEFAULT '',
    limit_nanos bigint NOT NULL DEFAULT 0,
    usage_nanos bigint NOT NULL DEFAULT 0,
    limit_remaining_nanos bigint NOT NULL DEFAULT 0,
    limit_reset text NOT NULL DEFAULT '',
    tier text NOT NULL DEFAULT '',
    synced_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT active_accounts_have_a_key CHECK (
        status = 'PROVISIONING' OR (key_hash <> '' AND key_ciphertext IS NOT NULL AND length(key_hint) = 4))
);
CREATE UNIQUE INDEX accounts_key_hash ON accounts (key_hash) WHERE key_hash <> '';
CREATE INDEX accounts_stale ON accounts (synced_at NULLS FIRST) WHERE status = 'ACTIVE';

CREATE TABLE byok_keys (
    user_id text PRIMARY KEY,
    key_ciphertext bytea NOT NULL,
    key_hint text NOT NULL CHECK (length(key_hint) = 4),
    validated_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);
