-- Transactions sent to contracts that opted in (`transactions` of `[[contracts]]`), with their
-- receipt's outcome. Keyed like `logs`: the block (number, hash) and the position in it, so a
-- replayed batch is skipped and a retraction removes an orphaned block's rows by (number, hash).
CREATE TABLE transactions (
    chain_id            BIGINT        NOT NULL,
    block_number        BIGINT        NOT NULL,
    block_hash          BYTEA         NOT NULL,
    block_timestamp     TIMESTAMPTZ   NOT NULL,
    tx_hash             BYTEA         NOT NULL,
    tx_index            INTEGER       NOT NULL,
    from_address        BYTEA         NOT NULL,
    to_address          BYTEA         NOT NULL,
    value               NUMERIC(78,0) NOT NULL,
    selector            BYTEA,
    contract            TEXT,
    function_name       TEXT,
    function_signature  TEXT,
    params              JSONB,
    status              TEXT          NOT NULL CHECK (status IN ('success', 'reverted')),
    gas_used            BIGINT        NOT NULL,
    gas_limit           BIGINT        NOT NULL,
    effective_gas_price NUMERIC(78,0) NOT NULL,
    PRIMARY KEY (chain_id, block_number, block_hash, tx_index)
);
-- Back-tests and investigations read the calls of one function of one contract over a range.
CREATE INDEX transactions_by_call ON transactions (chain_id, to_address, selector, block_number);
