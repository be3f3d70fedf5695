-- Answers of each provider caught contradicting the evidence (a block's logsBloom, its receipts,
-- another provider), counted since the ingest started, for `status`.
ALTER TABLE rpc_providers ADD COLUMN inconsistent_answers BIGINT NOT NULL DEFAULT 0;

-- The blocks whose records the ingest handed to Kafka but whose acknowledgement it has not
-- recorded in ingest_cursors yet. Written before the records are sent and cleared with the
-- cursor, so that after a crash in between the ingest knows which blocks Kafka may hold beyond
-- its cursor, and retracts those the chain has meanwhile replaced.
CREATE TABLE ingest_pending (
    chain_id   BIGINT PRIMARY KEY REFERENCES chains (chain_id),
    blocks     JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
