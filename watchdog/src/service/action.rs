//! [`IncidentAction`]: what a detector's configured action (`actions = [...]`, the
//! `tripwire_detect::Action` enum) does when one of its incidents opens. The service asks the
//! action whether an incident calls for it and hands those to the proposal task
//! (`propose.rs`), which runs it off the consumption loop, retrying while it fails. The `pause`
//! action is the [`Proposer`]: a Safe proposal that pauses the targets.

use std::future::Future;

use tripwire_detect::Action;

use crate::alerts::Incident;
use crate::safe::{Proposer, SafeError};

/// An action run for the incidents that call for it, at most once per incident.
pub trait IncidentAction: Send + Sync + 'static {
    /// Why a run failed (it is tried again).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The configured action this carries out.
    fn action(&self) -> Action;

    /// Whether `incident` calls for the action: its detector lists it, and whatever else the
    /// action requires (the `pause` action: a severity at least the Safe's `min_severity`).
    fn wants(&self, incident: &Incident) -> bool;

    /// Carries the action out for the incident known as `key`; the same `key` again gives the
    /// first outcome, not a second action. Returns the outcome's state, for the metrics.
    fn run(
        &self,
        key: &str,
        summary: &str,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// Finishes what earlier runs (of this process or an earlier one) left unfinished.
    fn resume(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl IncidentAction for Proposer {
    type Error = SafeError;

    fn action(&self) -> Action {
        Action::Pause
    }

    fn wants(&self, incident: &Incident) -> bool {
        incident.actions.contains(&self.action()) && incident.severity >= self.min_severity()
    }

    async fn run(&self, key: &str, summary: &str) -> Result<String, SafeError> {
        Ok(self.propose(key, summary).await?.state)
    }

    fn resume(&self) -> impl Future<Output = Result<(), SafeError>> + Send {
        self.retry_pending()
    }
}

/// An action for tests: records its runs, and fails as many times as it is told first.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Why the fake failed.
    #[derive(Debug, thiserror::Error)]
    #[error("the fake action failed")]
    pub(crate) struct FakeError;

    #[derive(Default)]
    struct State {
        runs: Vec<(String, String)>,
        resumes: usize,
        fail_runs: usize,
        fail_resumes: usize,
    }

    /// A `pause` action that wants every incident listing `pause`.
    #[derive(Clone, Default)]
    pub(crate) struct FakeAction {
        state: Arc<Mutex<State>>,
    }

    impl FakeAction {
        /// The next `runs` runs and `resumes` resumes fail.
        pub(crate) fn failing(runs: usize, resumes: usize) -> FakeAction {
            let a = FakeAction::default();
            {
                let mut s = a.state.lock().expect("fake action lock");
                s.fail_runs = runs;
                s.fail_resumes = resumes;
            }
            a
        }

        /// Every run so far: (key, summary).
        pub(crate) fn runs(&self) -> Vec<(String, String)> {
            self.state.lock().expect("fake action lock").runs.clone()
        }

        /// Resumes so far.
        pub(crate) fn resumes(&self) -> usize {
            self.state.lock().expect("fake action lock").resumes
        }
    }

    impl IncidentAction for FakeAction {
        type Error = FakeError;

        fn action(&self) -> Action {
            Action::Pause
        }

        fn wants(&self, incident: &Incident) -> bool {
            incident.actions.contains(&Action::Pause)
        }

        fn run(
            &self,
            key: &str,
            summary: &str,
        ) -> impl Future<Output = Result<String, FakeError>> + Send {
            let mut s = self.state.lock().expect("fake action lock");
            s.runs.push((key.to_owned(), summary.to_owned()));
            let result = if s.fail_runs > 0 {
                s.fail_runs -= 1;
                Err(FakeError)
            } else {
                Ok("proposed".to_owned())
            };
            std::future::ready(result)
        }

        fn resume(&self) -> impl Future<Output = Result<(), FakeError>> + Send {
            let mut s = self.state.lock().expect("fake action lock");
            s.resumes += 1;
            let result = if s.fail_resumes > 0 {
                s.fail_resumes -= 1;
                Err(FakeError)
            } else {
                Ok(())
            };
            std::future::ready(result)
        }
    }
}
