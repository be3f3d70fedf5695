-- tripwire-replay: progress of each run (so that the same command continues where it stopped)
-- and the audit trail of ingest cursor resets.

CREATE TABLE replay_runs (
    id                 bigserial PRIMARY KEY,
    chain_id           bigint NOT NULL,
    mode               text NOT NULL,
    from_block         bigint NOT NULL,
    to_block           bigint NOT NULL,
    -- Contract names, sorted and comma-separated; empty = every contract of the chain.
    contracts          text NOT NULL,
    next_block         bigint NOT NULL,
    state              text NOT NULL CHECK (state IN ('running', 'interrupted', 'done')),
    logs_published     bigint NOT NULL DEFAULT 0,
    stale_rows_deleted bigint NOT NULL DEFAULT 0,
    started_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz
);

CREATE UNIQUE INDEX replay_runs_open ON replay_runs (chain_id, mode, from_block, to_block, contracts)
    WHERE state <> 'done';

CREATE TABLE cursor_resets (
    id           bigserial PRIMARY KEY,
    chain_id     bigint NOT NULL,
    old_block    bigint,
    new_block    bigint NOT NULL,
    new_hash     bytea NOT NULL,
    requested_by text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
