-- Tripwire: tables written by the indexer (ingest cursor) and the sink (rows, blocks, offsets).
-- Hashes and addresses are stored as raw bytes (BYTEA); times as TIMESTAMPTZ.

CREATE TABLE chains (
    chain_id   BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per log on the canonical chain. The natural key (chain_id, block_hash, log_index) makes
-- every write idempotent; the primary key leads with block_number (a block hash implies its number, so
-- it is just as unique) so that a backfill appends at the right edge of the index instead of at random
-- places, and so that it also serves lookups by block range.
CREATE TABLE logs (
    chain_id        BIGINT      NOT NULL,
    block_number    BIGINT      NOT NULL,
    block_hash      BYTEA       NOT NULL,
    block_timestamp TIMESTAMPTZ NOT NULL,
    tx_hash         BYTEA       NOT NULL,
    tx_index        INTEGER     NOT NULL,
    log_index       INTEGER     NOT NULL,
    address         BYTEA       NOT NULL,
    topic0          BYTEA,
    topic1          BYTEA,
    topic2          BYTEA,
    topic3          BYTEA,
    data            BYTEA       NOT NULL,
    contract        TEXT,
    event_name      TEXT,
    params          JSONB,
    PRIMARY KEY (chain_id, block_number, block_hash, log_index)
);
CREATE INDEX logs_by_event ON logs (chain_id, address, topic0, block_number);

-- One row per processed block height (also blocks without logs), the canonical hash at that height.
CREATE TABLE blocks (
    chain_id    BIGINT      NOT NULL,
    number      BIGINT      NOT NULL,
    hash        BYTEA       NOT NULL,
    parent_hash BYTEA       NOT NULL,
    timestamp   TIMESTAMPTZ NOT NULL,
    log_count   INTEGER     NOT NULL,
    PRIMARY KEY (chain_id, number)
);
CREATE INDEX blocks_by_hash ON blocks (chain_id, hash);

-- Every reorg the sink applied (an audit trail; idempotent on the orphaned tip).
CREATE TABLE reorgs (
    chain_id        BIGINT      NOT NULL,
    orphaned_tip    BYTEA       NOT NULL,
    ancestor_number BIGINT      NOT NULL,
    ancestor_hash   BYTEA       NOT NULL,
    depth           INTEGER     NOT NULL,
    orphaned        JSONB       NOT NULL,
    applied_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, orphaned_tip)
);

-- The sink's Kafka position, written in the same transaction as the rows it covers.
CREATE TABLE sink_offsets (
    consumer    TEXT        NOT NULL,
    topic       TEXT        NOT NULL,
    partition   INTEGER     NOT NULL,
    next_offset BIGINT      NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

-- Records the sink could not parse: kept, never dropped, so nothing in the topic is lost silently.
CREATE TABLE dead_letters (
    topic       TEXT        NOT NULL,
    partition   INTEGER     NOT NULL,
    kafka_offset BIGINT     NOT NULL,
    key         BYTEA,
    payload     BYTEA,
    error       TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, kafka_offset)
);

-- The ingest's position: the last block whose records Kafka acknowledged, and the recent canonical
-- hashes it needs to detect a reorg that happened while it was down.
CREATE TABLE ingest_cursors (
    chain_id     BIGINT      PRIMARY KEY,
    block_number BIGINT      NOT NULL,
    block_hash   BYTEA       NOT NULL,
    recent       JSONB       NOT NULL,
    head_block   BIGINT,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The sink's position per chain: the highest block whose marker (and so all its logs) is written.
CREATE TABLE sink_cursors (
    chain_id     BIGINT      PRIMARY KEY,
    block_number BIGINT      NOT NULL,
    block_hash   BYTEA       NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What operators look at: per chain the head, what was ingested, what is in Postgres, and the lag.
-- Named after the table the old runbooks reset by hand; `last_synced_block` keeps its meaning.
CREATE VIEW indexer_state AS
SELECT c.chain_id,
       c.name                                   AS chain,
       i.head_block,
       i.block_number                           AS last_ingested_block,
       s.block_number                           AS last_synced_block,
       i.head_block - COALESCE(s.block_number, 0) AS lag_blocks,
       i.updated_at                             AS ingest_updated_at,
       s.updated_at                             AS sink_updated_at
FROM chains c
LEFT JOIN ingest_cursors i ON i.chain_id = c.chain_id
LEFT JOIN sink_cursors s ON s.chain_id = c.chain_id;
