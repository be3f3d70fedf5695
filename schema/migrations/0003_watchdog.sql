-- The watchdog's state: detector baselines and the stream position are saved together (the
-- position in sink_offsets under the watchdog's consumer name), so a restart neither re-learns
-- nor counts twice; incidents are kept for history and so that a restart updates them.

CREATE TABLE watchdog_state (
    consumer   text PRIMARY KEY,
    -- Every detector's snapshot, keyed by detector name.
    detectors  jsonb NOT NULL,
    -- Logs and blocks recently seen, so a record delivered twice counts once.
    seen       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE watchdog_incidents (
    id              bigserial PRIMARY KEY,
    consumer        text NOT NULL,
    -- detector/series: at most one firing incident per key.
    key             text NOT NULL,
    detector        text NOT NULL,
    kind            text NOT NULL,
    severity        text NOT NULL,
    chain_id        bigint NOT NULL,
    contract        text,
    event           text,
    series          text NOT NULL,
    state           text NOT NULL CHECK (state IN ('firing', 'resolved')),
    opened_at       timestamptz NOT NULL,
    last_finding_at timestamptz NOT NULL,
    resolved_at     timestamptz,
    findings        bigint NOT NULL,
    block_number    bigint NOT NULL,
    tx_hash         text,
    observed        double precision NOT NULL,
    expected        double precision NOT NULL,
    score           double precision NOT NULL,
    score_name      text NOT NULL,
    summary         text NOT NULL,
    note            text,
    -- The whole incident as the watchdog keeps it (trigger blocks, actions), to restore it.
    detail          jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX watchdog_incidents_one_firing ON watchdog_incidents (consumer, key)
    WHERE state = 'firing';
CREATE INDEX watchdog_incidents_recent ON watchdog_incidents (consumer, key, id DESC);
