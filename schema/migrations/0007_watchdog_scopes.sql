-- Watchdog instances share the chain topics through a Kafka consumer group, so its state is kept
-- per topic (a scope): the instance that is given a topic loads that topic's detector snapshot,
-- seen records and position, whichever instance saved them. The row of an earlier version, which
-- held every topic at once, stays under the topic '' and seeds the scopes that have none yet.
ALTER TABLE watchdog_state ADD COLUMN topic text NOT NULL DEFAULT '';
ALTER TABLE watchdog_state DROP CONSTRAINT watchdog_state_pkey;
ALTER TABLE watchdog_state ADD PRIMARY KEY (consumer, topic);
CREATE INDEX watchdog_incidents_chain ON watchdog_incidents (consumer, chain_id, key, id);
