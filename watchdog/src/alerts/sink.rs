//! [`AlertSink`]: where [`super::Deliveries`] posts alerts, one receiver per URL. The Alertmanager
//! [`Client`] is the production sink; tests use `fake::FakeSink`, whose receivers accept,
//! refuse or hang as told.

use std::future::Future;

use super::{Alert, Client, DeliveryError};

/// Receivers of alerts, each named by a URL. Delivery keeps one queue and one task per URL, so
/// what one receiver does (fail, hang) is that queue's business only.
pub trait AlertSink: Clone + Send + Sync + 'static {
    /// The receivers' URLs.
    fn urls(&self) -> &[String];

    /// Posts `alerts` to the receiver at `url` (one of [`AlertSink::urls`]).
    fn post_to(
        &self,
        url: &str,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

impl AlertSink for Client {
    fn urls(&self) -> &[String] {
        Client::urls(self)
    }

    fn post_to(
        &self,
        url: &str,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send {
        Client::post_to(self, url, alerts)
    }
}

/// An in-memory sink for tests.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::HashMap;
    use std::future::Future;
    use std::sync::{Arc, Mutex};

    use super::{Alert, AlertSink, DeliveryError};

    /// What a fake receiver does with a post.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Behaviour {
        /// Takes the alerts.
        Accept,
        /// Answers with this HTTP status.
        Refuse(u16),
        /// Never answers.
        Hang,
    }

    /// Receivers whose behaviour the test sets per URL (all accept at first); every accepted
    /// post is kept.
    #[derive(Clone)]
    pub(crate) struct FakeSink {
        urls: Vec<String>,
        state: Arc<Mutex<State>>,
    }

    #[derive(Default)]
    struct State {
        behaviour: HashMap<String, Behaviour>,
        accepted: Vec<(String, Vec<Alert>)>,
        attempts: HashMap<String, usize>,
    }

    impl FakeSink {
        pub(crate) fn new(urls: &[&str]) -> FakeSink {
            FakeSink {
                urls: urls.iter().map(|u| u.to_string()).collect(),
                state: Arc::default(),
            }
        }

        pub(crate) fn set(&self, url: &str, behaviour: Behaviour) {
            let mut s = self.state.lock().expect("fake sink lock");
            s.behaviour.insert(url.to_owned(), behaviour);
        }

        /// The alerts `url` accepted, post by post.
        pub(crate) fn accepted(&self, url: &str) -> Vec<Vec<Alert>> {
            let s = self.state.lock().expect("fake sink lock");
            s.accepted
                .iter()
                .filter(|(u, _)| u == url)
                .map(|(_, a)| a.clone())
                .collect()
        }

        /// Posts `url` was sent, answered or not.
        pub(crate) fn attempts(&self, url: &str) -> usize {
            let s = self.state.lock().expect("fake sink lock");
            s.attempts.get(url).copied().unwrap_or(0)
        }
    }

    impl AlertSink for FakeSink {
        fn urls(&self) -> &[String] {
            &self.urls
        }

        fn post_to(
            &self,
            url: &str,
            alerts: &[Alert],
        ) -> impl Future<Output = Result<(), DeliveryError>> + Send {
            let behaviour = {
                let mut s = self.state.lock().expect("fake sink lock");
                *s.attempts.entry(url.to_owned()).or_default() += 1;
                let b = s.behaviour.get(url).copied().unwrap_or(Behaviour::Accept);
                if b == Behaviour::Accept {
                    s.accepted.push((url.to_owned(), alerts.to_vec()));
                }
                b
            };
            let url = url.to_owned();
            async move {
                match behaviour {
                    Behaviour::Accept => Ok(()),
                    Behaviour::Refuse(status) => Err(DeliveryError::Rejected {
                        url,
                        status,
                        body: "refused by the fake".into(),
                    }),
                    Behaviour::Hang => std::future::pending().await,
                }
            }
        }
    }
}
