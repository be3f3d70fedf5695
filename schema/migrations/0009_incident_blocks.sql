-- Where each incident happened on the chain: the block of the finding that opened it, and the
-- oldest and newest of its trigger blocks still on the chain (a reorg removes those it replaced;
-- NULL once none is left). `block_number` stays the block of the latest finding.
ALTER TABLE watchdog_incidents
    ADD COLUMN opened_block BIGINT,
    ADD COLUMN first_trigger_block BIGINT,
    ADD COLUMN last_trigger_block BIGINT;

-- Incidents stored before: their oldest kept trigger is the best estimate of the opening block
-- (an incident keeps its last 64 trigger blocks).
UPDATE watchdog_incidents SET
    first_trigger_block = (SELECT min((t ->> 'number')::bigint)
                           FROM jsonb_array_elements(detail -> 'triggers') AS t),
    last_trigger_block = (SELECT max((t ->> 'number')::bigint)
                          FROM jsonb_array_elements(detail -> 'triggers') AS t);
UPDATE watchdog_incidents SET opened_block = COALESCE(first_trigger_block, block_number);

ALTER TABLE watchdog_incidents ALTER COLUMN opened_block SET NOT NULL;
CREATE INDEX watchdog_incidents_by_opened_block ON watchdog_incidents (chain_id, opened_block);
