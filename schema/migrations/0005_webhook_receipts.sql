-- Alerts received from Alertmanager by the watchdog's webhook receiver. Alertmanager re-sends a
-- group on every group and repeat interval: one row per fingerprint, startsAt and status, with the
-- number of deliveries; actions are taken only when the row is created.

CREATE TABLE webhook_receipts (
    id               bigserial PRIMARY KEY,
    fingerprint      text NOT NULL,
    starts_at        timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('firing', 'resolved')),
    labels           jsonb NOT NULL,
    annotations      jsonb NOT NULL,
    receiver         text,
    group_key        text,
    -- Names of the rules that matched, and what their actions did: [{rule, action, result}].
    rules            text[] NOT NULL,
    actions          jsonb NOT NULL,
    deliveries       integer NOT NULL DEFAULT 1,
    received_at      timestamptz NOT NULL DEFAULT now(),
    last_received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (fingerprint, starts_at, status)
);
