//! The runtime's own metrics: those of the HTTP server every process runs.

use metrics::describe_counter;

/// Failed accepts of the HTTP server.
pub const HTTP_ACCEPT_ERRORS: &str = "tripwire_http_accept_errors_total";

/// Every metric name this crate declares (the deploy checks read it).
pub const NAMES: &[&str] = &[HTTP_ACCEPT_ERRORS];

/// Registers the descriptions (called once, when the recorder is installed).
pub fn describe() {
    describe_counter!(
        HTTP_ACCEPT_ERRORS,
        "Failed accepts of the HTTP server (e.g. file descriptors exhausted), retried with backoff"
    );
}
