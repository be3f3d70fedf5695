-- Safe pause proposals prepared by the watchdog: one per source (an incident, a webhook alert),
-- whatever repeats, restarts or replays happen. The watchdog never executes them: owners sign and
-- execute in the Safe wallet or with the commands `tripwire-watchdog proposals show` prints.

CREATE TABLE safe_proposals (
    id           bigserial PRIMARY KEY,
    -- What asked for the pause, e.g. `incident:<consumer>:<id>`; unique, so it is asked once.
    source_key   text NOT NULL UNIQUE,
    chain_id     bigint NOT NULL,
    safe         text NOT NULL,
    safe_tx_hash text NOT NULL,
    -- The SafeTx as signed.
    nonce        text NOT NULL,
    to_address   text NOT NULL,
    value        text NOT NULL,
    data         text NOT NULL,
    operation    smallint NOT NULL,
    -- The target calls inside it: [{to, function, data}].
    calls        jsonb NOT NULL,
    proposer     text NOT NULL,
    signature    text NOT NULL,
    -- recorded: kept here only (no transaction service configured); pending: to be submitted;
    -- submitted: accepted by the Safe Transaction Service; rejected: refused (see error).
    state        text NOT NULL CHECK (state IN ('recorded', 'pending', 'submitted', 'rejected')),
    error        text,
    attempts     integer NOT NULL DEFAULT 0,
    summary      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX safe_proposals_state ON safe_proposals (state) WHERE state = 'pending';
