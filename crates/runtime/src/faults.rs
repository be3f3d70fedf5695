//! Deterministic fault points for the crash-safety tests: named places between two durable
//! effects (publish, acknowledgement, cursor save, COPY, commit) where a test makes the process
//! die exactly there, instead of hoping a random kill lands in the window.
//!
//! Points are armed only in debug builds (the binaries the tests run), from the `fail` crate's
//! `FAILPOINTS` variable: `FAILPOINTS='ingest.after_ack=1*return(kill)'`. Two actions mean
//! something here: `return(kill)` sends the process SIGKILL on the spot, `return(term)` sends it
//! SIGTERM and abandons the work in progress at that point (what a shutdown that cancels the
//! current step does). Release builds compile every point to nothing.

/// The points, so that a test and the code name the same places.
pub mod points {
    /// The ingest handed a group's records to the producer; no acknowledgement awaited yet.
    pub const INGEST_AFTER_PUBLISH: &str = "ingest.after_publish";
    /// Kafka acknowledged every record of the group; the cursor is not saved yet.
    pub const INGEST_AFTER_ACK: &str = "ingest.after_ack";
    /// The sink's transaction holds the batch's logs (COPY done); its blocks are not written yet.
    pub const SINK_INSIDE_COPY: &str = "sink.inside_copy";
    /// The sink committed a batch (rows and stored offsets); nothing after it has run.
    pub const SINK_AFTER_COMMIT: &str = "sink.after_commit";
    /// Every point.
    pub const ALL: [&str; 4] = [
        INGEST_AFTER_PUBLISH,
        INGEST_AFTER_ACK,
        SINK_INSIDE_COPY,
        SINK_AFTER_COMMIT,
    ];
}

/// The process was told to stop at a fault point (`return(term)`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("stopped at fault point {0} (SIGTERM)")]
pub struct Stopped(pub &'static str);

/// Arms the points `FAILPOINTS` names (debug builds only). A malformed entry is an error naming
/// it, not a silently unarmed point.
pub fn setup() -> Result<(), String> {
    #[cfg(debug_assertions)]
    if let Ok(spec) = std::env::var("FAILPOINTS") {
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, actions) = entry
                .split_once('=')
                .ok_or_else(|| format!("FAILPOINTS entry `{entry}` is not name=actions"))?;
            if !points::ALL.contains(&name) {
                return Err(format!(
                    "FAILPOINTS names `{name}`, which is not a fault point ({})",
                    points::ALL.join(", ")
                ));
            }
            fail::cfg(name, actions).map_err(|e| format!("FAILPOINTS entry `{entry}`: {e}"))?;
            tracing::warn!(point = name, actions, "fault point armed");
        }
    }
    Ok(())
}

/// Passes fault point `name`: nothing unless a test armed it.
#[inline]
pub fn point(name: &'static str) -> Result<(), Stopped> {
    #[cfg(debug_assertions)]
    if let Some(action) = fail::eval(name, |arg| arg.unwrap_or_default()) {
        match action.as_str() {
            "kill" => {
                signal_self("KILL");
                // SIGKILL is not handled; this is never reached.
                loop {
                    std::thread::park();
                }
            }
            "term" => {
                tracing::warn!(
                    point = name,
                    "fault point: SIGTERM, abandoning the step here"
                );
                signal_self("TERM");
                return Err(Stopped(name));
            }
            other => tracing::warn!(point = name, action = other, "fault point hit"),
        }
    }
    let _ = name;
    Ok(())
}

#[cfg(debug_assertions)]
fn signal_self(signal: &str) {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(&pid)
        .status();
}
