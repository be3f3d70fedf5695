-- The state of each RPC provider as the ingest of its chain last saw it, so that
-- `tripwire-indexer status` (another process) can show which providers are in rotation and why not.
CREATE TABLE rpc_providers (
    chain_id    BIGINT NOT NULL REFERENCES chains (chain_id),
    provider    TEXT NOT NULL,
    weight      INTEGER NOT NULL,
    in_rotation BOOLEAN NOT NULL,
    head_block  BIGINT,
    error_rate  DOUBLE PRECISION NOT NULL,
    latency_ms  DOUBLE PRECISION NOT NULL,
    reason      TEXT,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, provider)
);
