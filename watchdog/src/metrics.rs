//! Every metric the watchdog exports, declared in one place.

use metrics::{describe_counter, describe_gauge, describe_histogram};

pub const RECORDS_CONSUMED: &str = "tripwire_watchdog_records_consumed_total";
pub const DUPLICATES: &str = "tripwire_watchdog_duplicates_total";
pub const HISTORY: &str = "tripwire_watchdog_history_skipped_total";
pub const RECORDS_MISSED: &str = "tripwire_watchdog_records_missed_total";
pub const CONSUMER_LAG: &str = "tripwire_watchdog_consumer_lag_records";
pub const EVALUATIONS: &str = "tripwire_watchdog_evaluations_total";
pub const FINDINGS: &str = "tripwire_watchdog_findings_total";
pub const SCORE: &str = "tripwire_watchdog_last_finding_score";
pub const ALERTS_FIRED: &str = "tripwire_watchdog_alerts_fired_total";
pub const ALERTS_RESOLVED: &str = "tripwire_watchdog_alerts_resolved_total";
pub const ALERTS_SUPPRESSED: &str = "tripwire_watchdog_alerts_suppressed_total";
pub const ALERTS_FIRING: &str = "tripwire_watchdog_alerts_firing";
pub const DELIVERY_ERRORS: &str = "tripwire_watchdog_delivery_errors_total";
pub const DELIVERY_SECONDS: &str = "tripwire_watchdog_delivery_seconds";
pub const DELIVERY_QUEUE: &str = "tripwire_watchdog_delivery_queue_incidents";
pub const DELIVERY_AGE: &str = "tripwire_watchdog_delivery_queue_age_seconds";
pub const DELIVERY_DROPPED: &str = "tripwire_watchdog_delivery_dropped_total";
pub const PROPOSAL_QUEUE: &str = "tripwire_watchdog_safe_proposal_queue";
pub const PROPOSAL_AGE: &str = "tripwire_watchdog_safe_proposal_queue_age_seconds";
pub const CHECKPOINTS: &str = "tripwire_watchdog_checkpoints_total";
pub const WEBHOOK_REQUESTS: &str = "tripwire_watchdog_webhook_requests_total";
pub const WEBHOOK_REJECTED: &str = "tripwire_watchdog_webhook_rejected_total";
pub const WEBHOOK_ALERTS: &str = "tripwire_watchdog_webhook_alerts_total";
pub const WEBHOOK_DUPLICATES: &str = "tripwire_watchdog_webhook_redeliveries_total";
pub const WEBHOOK_ACTIONS: &str = "tripwire_watchdog_webhook_actions_total";
pub const PROPOSALS: &str = "tripwire_watchdog_safe_proposals_total";
pub const PROPOSAL_ERRORS: &str = "tripwire_watchdog_safe_proposal_errors_total";

/// Every metric name the watchdog declares (the deploy checks read it).
pub const NAMES: &[&str] = &[
    RECORDS_CONSUMED,
    DUPLICATES,
    HISTORY,
    RECORDS_MISSED,
    CONSUMER_LAG,
    EVALUATIONS,
    FINDINGS,
    SCORE,
    ALERTS_FIRED,
    ALERTS_RESOLVED,
    ALERTS_SUPPRESSED,
    ALERTS_FIRING,
    DELIVERY_ERRORS,
    DELIVERY_SECONDS,
    DELIVERY_QUEUE,
    DELIVERY_AGE,
    DELIVERY_DROPPED,
    PROPOSAL_QUEUE,
    PROPOSAL_AGE,
    CHECKPOINTS,
    WEBHOOK_REQUESTS,
    WEBHOOK_REJECTED,
    WEBHOOK_ALERTS,
    WEBHOOK_DUPLICATES,
    WEBHOOK_ACTIONS,
    PROPOSALS,
    PROPOSAL_ERRORS,
];

pub fn describe() {
    tripwire_kafka::metrics::describe();
    // The Safe reads go through the RPC pool.
    tripwire_rpc::metrics::describe();
    describe_counter!(
        RECORDS_CONSUMED,
        "Stream records read, by chain and record type"
    );
    describe_counter!(
        DUPLICATES,
        "Records skipped because they were already counted"
    );
    describe_counter!(
        RECORDS_MISSED,
        "Records that left the broker (retention) before the watchdog read them, by topic and partition"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Records between the watchdog's position and the end of each partition"
    );
    describe_counter!(
        EVALUATIONS,
        "Logs fed to the detectors (each seen for the first time)"
    );
    describe_counter!(FINDINGS, "Detections by detector and severity");
    describe_gauge!(
        SCORE,
        "Score of the latest detection by detector (p-value, robust z, CUSUM)"
    );
    describe_counter!(ALERTS_FIRED, "Incidents opened, by detector and severity");
    describe_counter!(
        ALERTS_RESOLVED,
        "Incidents resolved, by detector and severity"
    );
    describe_counter!(
        ALERTS_SUPPRESSED,
        "Findings held back by the per-detector storm cap"
    );
    describe_gauge!(ALERTS_FIRING, "Incidents firing now");
    describe_counter!(DELIVERY_ERRORS, "Failed posts to Alertmanager, by URL");
    describe_histogram!(
        DELIVERY_SECONDS,
        "Duration of one post of alerts to one Alertmanager, by URL"
    );
    describe_gauge!(
        DELIVERY_QUEUE,
        "Incidents whose latest state has not reached this Alertmanager yet, by URL"
    );
    describe_gauge!(
        DELIVERY_AGE,
        "Seconds the oldest incident has waited in this Alertmanager's queue, by URL"
    );
    describe_counter!(
        DELIVERY_DROPPED,
        "Incidents dropped from a full delivery queue (a firing one is queued again), by URL"
    );
    describe_gauge!(
        PROPOSAL_QUEUE,
        "Pause proposals waiting to be prepared or submitted"
    );
    describe_gauge!(
        PROPOSAL_AGE,
        "Seconds the oldest waiting pause proposal has waited"
    );
    describe_counter!(
        CHECKPOINTS,
        "Detector state and stream position saved to Postgres"
    );
}
