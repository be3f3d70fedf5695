//! Every metric the watchdog exports, declared once as typed structs (`metrics-derive`): the field
//! is the name after the struct's scope, its doc comment the description. The consumption loop
//! builds its structs once ([`Service`]), each Alertmanager queue its own ([`Delivery`]), the
//! proposal task its own ([`Proposing`]), the webhook receiver shares the process's
//! ([`webhook`]); label values known only at the event (detector, topic, status) go through a
//! [`Family`].
//!
//! Gauges whose 0 would be false (a lag, a queue and its age before the first report, a score
//! before any finding) are [`Lazy`] or built with their first value; `alerts_firing` is set to
//! 0 when the service starts, which is true then.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Label};
use metrics_derive::Metrics;
use tripwire_runtime::metrics::{no_labels, Family, Lazy};

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

/// Registers descriptions (called once when the recorder is installed).
///
/// Unconditionally (`force_describe`): metrics-derive describes a struct once per process, to
/// whichever recorder exists when the first one is built, which may be none or a test's own.
pub fn describe() {
    tripwire_kafka::metrics::describe();
    // The Safe reads go through the RPC pool.
    tripwire_rpc::metrics::describe();
    describe_own();
}

/// The watchdog's own descriptions (without those of the crates it uses).
fn describe_own() {
    Consumed::force_describe();
    LoopCounters::force_describe();
    Missed::force_describe();
    ConsumerLag::force_describe();
    DetectorCounters::force_describe();
    Score::force_describe();
    Suppressed::force_describe();
    Firing::force_describe();
    DeliveryCounters::force_describe();
    DeliveryQueue::force_describe();
    ProposalQueue::force_describe();
    ProposalErrors::force_describe();
    ProposalStates::force_describe();
    WebhookCounters::force_describe();
    WebhookRequests::force_describe();
    WebhookRejected::force_describe();
    WebhookAlerts::force_describe();
    WebhookActions::force_describe();
}

/// Records read, of one type (label `type`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct Consumed {
    /// Stream records read, by chain and record type
    pub(crate) records_consumed_total: Counter,
}

/// The consumption loop's counters (no labels).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct LoopCounters {
    /// Records skipped because they were already counted
    pub(crate) duplicates_total: Counter,
    /// Records skipped because their block is older than the newest seen (history, not news)
    pub(crate) history_skipped_total: Counter,
    /// Logs fed to the detectors (each seen for the first time)
    pub(crate) evaluations_total: Counter,
    /// Detector state and stream position saved to Postgres
    pub(crate) checkpoints_total: Counter,
}

/// Records lost to retention on one partition (labels `topic`, `partition`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct Missed {
    /// Records that left the broker (retention) before the watchdog read them, by topic and partition
    pub(crate) records_missed_total: Counter,
}

/// The lag of one partition (labels `topic`, `partition`), built with its first value.
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct ConsumerLag {
    /// Records between the watchdog's position and the end of each partition
    pub(crate) consumer_lag_records: Gauge,
}

/// Detections and incidents of one detector and severity (labels `detector`, `severity`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct DetectorCounters {
    /// Detections by detector and severity
    pub(crate) findings_total: Counter,
    /// Incidents opened, by detector and severity
    pub(crate) alerts_fired_total: Counter,
    /// Incidents resolved, by detector and severity
    pub(crate) alerts_resolved_total: Counter,
}

/// The score of a detector's latest finding (label `detector`), built with the first.
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct Score {
    /// Score of the latest detection by detector (p-value, robust z, CUSUM)
    pub(crate) last_finding_score: Gauge,
}

/// Findings held back, of one detector (label `detector`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct Suppressed {
    /// Findings held back by the per-detector storm cap
    pub(crate) alerts_suppressed_total: Counter,
}

/// Incidents firing (no labels; 0 at start is true).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct Firing {
    /// Incidents firing now
    pub(crate) alerts_firing: Gauge,
}

/// One Alertmanager's posts (label `url`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct DeliveryCounters {
    /// Failed posts to Alertmanager, by URL
    pub(crate) delivery_errors_total: Counter,
    /// Duration of one post of alerts to one Alertmanager, by URL
    pub(crate) delivery_seconds: Histogram,
    /// Incidents dropped from a full delivery queue (a firing one is queued again), by URL
    pub(crate) delivery_dropped_total: Counter,
}

/// One Alertmanager's queue (label `url`), built with its first report.
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct DeliveryQueue {
    /// Incidents whose latest state has not reached this Alertmanager yet, by URL
    pub(crate) delivery_queue_incidents: Gauge,
    /// Seconds the oldest incident has waited in this Alertmanager's queue, by URL
    pub(crate) delivery_queue_age_seconds: Gauge,
}

/// The proposal queue (no labels), built with its first report.
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct ProposalQueue {
    /// Pause proposals waiting to be prepared or submitted
    pub(crate) safe_proposal_queue: Gauge,
    /// Seconds the oldest waiting pause proposal has waited
    pub(crate) safe_proposal_queue_age_seconds: Gauge,
}

/// Failed proposals (no labels).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct ProposalErrors {
    /// Failed attempts to prepare or submit a Safe pause proposal
    pub(crate) safe_proposal_errors_total: Counter,
}

/// Proposals prepared, of one state (label `state`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct ProposalStates {
    /// Safe pause proposals prepared, by state
    pub(crate) safe_proposals_total: Counter,
}

/// The webhook receiver's counters (no labels).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct WebhookCounters {
    /// Webhook alerts received again (same fingerprint, startsAt and status), acted on once
    pub(crate) webhook_redeliveries_total: Counter,
}

/// Webhook answers of one status (label `status`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct WebhookRequests {
    /// Webhook requests answered, by HTTP status
    pub(crate) webhook_requests_total: Counter,
}

/// Webhook rejections of one reason (label `reason`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct WebhookRejected {
    /// Webhook requests rejected, by reason
    pub(crate) webhook_rejected_total: Counter,
}

/// Webhook alerts of one status (label `status`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct WebhookAlerts {
    /// Alerts received on the webhook, by status
    pub(crate) webhook_alerts_total: Counter,
}

/// Webhook actions of one rule, action and outcome (labels `rule`, `action`, `ok`).
#[derive(Metrics)]
#[metrics(scope = "tripwire_watchdog", separator = "_")]
pub(crate) struct WebhookActions {
    /// Webhook rule actions taken, by rule, action and outcome
    pub(crate) webhook_actions_total: Counter,
}

fn label(key: &'static str, value: impl Into<String>) -> Vec<Label> {
    vec![Label::new(key, value.into())]
}

/// A topic and partition, as the labels of the per-partition metrics.
pub(crate) type TopicPartition = (String, i32);

fn partition_labels((topic, partition): &TopicPartition) -> Vec<Label> {
    vec![
        Label::new("topic", topic.clone()),
        Label::new("partition", partition.to_string()),
    ]
}

/// The consumption loop's metrics, built with the service.
pub(crate) struct Service {
    pub(crate) counters: LoopCounters,
    pub(crate) invalid: Consumed,
    pub(crate) logs: Consumed,
    pub(crate) blocks: Consumed,
    pub(crate) transactions: Consumed,
    pub(crate) retractions: Consumed,
    pub(crate) firing: Firing,
    /// By (detector, severity).
    pub(crate) detectors: Family<(String, String), DetectorCounters>,
    pub(crate) scores: Family<String, Score>,
    pub(crate) suppressed: Family<String, Suppressed>,
    pub(crate) missed: Family<TopicPartition, Missed>,
    pub(crate) lag: Family<TopicPartition, ConsumerLag>,
    pub(crate) partitions: Lazy<tripwire_kafka::metrics::Partitions>,
}

impl Service {
    pub(crate) fn new() -> Self {
        let consumed = |t: &'static str| Consumed::new_with_labels(label("type", t));
        Service {
            counters: LoopCounters::new_with_labels(no_labels()),
            invalid: consumed("invalid"),
            logs: consumed("log"),
            blocks: consumed("block"),
            transactions: consumed("transaction"),
            retractions: consumed("retraction"),
            firing: Firing::new_with_labels(no_labels()),
            detectors: Family::new(|(detector, severity): &(String, String)| {
                DetectorCounters::new_with_labels(vec![
                    Label::new("detector", detector.clone()),
                    Label::new("severity", severity.clone()),
                ])
            }),
            scores: Family::new(|d: &String| Score::new_with_labels(label("detector", d))),
            suppressed: Family::new(|d: &String| Suppressed::new_with_labels(label("detector", d))),
            missed: Family::new(|tp| Missed::new_with_labels(partition_labels(tp))),
            lag: Family::new(|tp| ConsumerLag::new_with_labels(partition_labels(tp))),
            partitions: tripwire_kafka::metrics::Partitions::lazy(),
        }
    }
}

/// One Alertmanager queue's metrics (label `url`, credentials hidden).
pub(crate) struct Delivery {
    pub(crate) counters: DeliveryCounters,
    pub(crate) queue: Lazy<DeliveryQueue>,
}

impl Delivery {
    pub(crate) fn new(url: &str) -> Self {
        let labels = label("url", url);
        let queue = labels.clone();
        Delivery {
            counters: DeliveryCounters::new_with_labels(labels),
            queue: Lazy::new(move || DeliveryQueue::new_with_labels(queue.clone())),
        }
    }
}

/// The proposal task's metrics.
pub(crate) struct Proposing {
    pub(crate) queue: Lazy<ProposalQueue>,
    pub(crate) errors: ProposalErrors,
    pub(crate) states: Family<String, ProposalStates>,
}

impl Proposing {
    pub(crate) fn new() -> Self {
        Proposing {
            queue: Lazy::new(|| ProposalQueue::new_with_labels(no_labels())),
            errors: ProposalErrors::new_with_labels(no_labels()),
            states: Family::new(|s: &String| ProposalStates::new_with_labels(label("state", s))),
        }
    }
}

/// The webhook receiver's metrics.
pub(crate) struct Webhook {
    pub(crate) counters: WebhookCounters,
    pub(crate) requests: Family<u16, WebhookRequests>,
    pub(crate) rejected: Family<&'static str, WebhookRejected>,
    pub(crate) alerts: Family<&'static str, WebhookAlerts>,
    /// By (rule, action, ok).
    pub(crate) actions: Family<(String, &'static str, bool), WebhookActions>,
}

/// The webhook receiver's metrics, shared by its handlers (free functions of the router), built
/// on the first request.
pub(crate) fn webhook() -> &'static Webhook {
    static WEBHOOK: OnceLock<Webhook> = OnceLock::new();
    WEBHOOK.get_or_init(|| Webhook {
        counters: WebhookCounters::new_with_labels(no_labels()),
        requests: Family::new(|s: &u16| {
            WebhookRequests::new_with_labels(label("status", s.to_string()))
        }),
        rejected: Family::new(|&r: &&'static str| {
            WebhookRejected::new_with_labels(vec![Label::from_static_parts("reason", r)])
        }),
        alerts: Family::new(|&s: &&'static str| {
            WebhookAlerts::new_with_labels(vec![Label::from_static_parts("status", s)])
        }),
        actions: Family::new(|&(ref rule, action, ok): &(String, &'static str, bool)| {
            WebhookActions::new_with_labels(vec![
                Label::new("rule", rule.clone()),
                Label::from_static_parts("action", action),
                Label::new("ok", ok.to_string()),
            ])
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn names_are_the_described_fields() {
        let described = tripwire_runtime::metrics::described(super::describe_own);
        let names: BTreeSet<String> = super::NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(described, names);
    }
}
