//! The runtime's own metrics (those of the HTTP server every process runs), and the two small
//! caches the crates' typed metric structs share: [`Family`] (one labelled struct per label set
//! known only at run time: a provider's error kind, a detector) and [`Lazy`] (a struct created
//! when it is first used, for gauges whose zero before the first real value would be false).
//!
//! Each crate declares its metrics once, as structs of `metrics-derive`: the field is the name
//! (after the struct's scope), its doc comment the description, registered once by the crate's
//! `describe()`. [`described`] lets a crate's unit test tie those fields to its `NAMES`.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_derive::Metrics;

/// Failed accepts of the HTTP server.
pub const HTTP_ACCEPT_ERRORS: &str = "tripwire_http_accept_errors_total";

/// Every metric name this crate declares (the deploy checks read it).
pub const NAMES: &[&str] = &[HTTP_ACCEPT_ERRORS];

/// The HTTP server's metrics.
#[derive(Metrics, Clone)]
#[metrics(scope = "tripwire", separator = "_")]
pub(crate) struct ServerMetrics {
    /// Failed accepts of the HTTP server (e.g. file descriptors exhausted), retried with backoff
    pub(crate) http_accept_errors_total: Counter,
}

impl ServerMetrics {
    /// The handles, once the recorder is installed.
    pub(crate) fn new() -> Self {
        ServerMetrics::new_with_labels(no_labels())
    }
}

/// Registers the descriptions (called once, when the recorder is installed).
///
/// Unconditionally (`force_describe`): metrics-derive describes a struct once per process, to
/// whichever recorder exists when the first one is built, which may be none or a test's own.
pub fn describe() {
    ServerMetrics::force_describe();
}

/// No labels, for a struct whose series has none.
pub fn no_labels() -> Vec<Label> {
    Vec::new()
}

/// One metrics struct per label set whose values are known only at run time: the first use of a
/// key builds the struct (registering its series then, not before), later uses share it.
pub struct Family<K, M> {
    make: Box<dyn Fn(&K) -> M + Send + Sync>,
    members: RwLock<HashMap<K, Arc<M>>>,
}

impl<K: Eq + Hash + Clone, M> Family<K, M> {
    /// A family whose member for `key` is `make(key)` (typically `new_with_labels`).
    pub fn new(make: impl Fn(&K) -> M + Send + Sync + 'static) -> Self {
        Family {
            make: Box::new(make),
            members: RwLock::default(),
        }
    }

    /// The struct of `key`, built on its first use.
    pub fn get(&self, key: &K) -> Arc<M> {
        if let Some(m) = self
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return m.clone();
        }
        self.members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_insert_with(|| Arc::new((self.make)(key)))
            .clone()
    }
}

impl<K, M> std::fmt::Debug for Family<K, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").finish_non_exhaustive()
    }
}

/// A metrics struct built on its first use: its series appear with the first real value, not as
/// a zero that would claim something (a head at block 0, no provider in rotation).
pub struct Lazy<M> {
    make: Box<dyn Fn() -> M + Send + Sync>,
    cell: OnceLock<M>,
}

impl<M> Lazy<M> {
    /// A struct that `make` builds when it is first used.
    pub fn new(make: impl Fn() -> M + Send + Sync + 'static) -> Self {
        Lazy {
            make: Box::new(make),
            cell: OnceLock::new(),
        }
    }

    /// The struct, built now if this is its first use.
    pub fn get(&self) -> &M {
        self.cell.get_or_init(|| (self.make)())
    }
}

impl<M> std::fmt::Debug for Lazy<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lazy")
            .field("built", &self.cell.get().is_some())
            .finish()
    }
}

/// The metric names `describe` registers descriptions for (for the unit tests that tie a crate's
/// structs to its `NAMES`): it runs with a recorder of its own, so the global one is untouched.
pub fn described(describe: impl FnOnce()) -> BTreeSet<String> {
    let recorder = Described::default();
    metrics::with_local_recorder(&recorder, describe);
    let names = recorder.names.lock().unwrap_or_else(|p| p.into_inner());
    names.clone()
}

/// A recorder that keeps the described names and registers nothing.
#[derive(Default)]
struct Described {
    names: Mutex<BTreeSet<String>>,
}

impl Described {
    fn add(&self, key: KeyName) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.as_str().to_owned());
    }
}

impl Recorder for Described {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.add(key);
    }

    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.add(key);
    }

    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.add(key);
    }

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_described_fields() {
        let described = described(describe);
        let names: BTreeSet<String> = NAMES.iter().map(|n| n.to_string()).collect();
        assert_eq!(described, names);
    }

    #[test]
    fn a_family_builds_each_member_once() {
        let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = built.clone();
        let family = Family::new(move |k: &u32| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *k * 2
        });
        assert_eq!(*family.get(&1), 2);
        assert_eq!(*family.get(&1), 2);
        assert_eq!(*family.get(&2), 4);
        assert_eq!(built.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn lazy_builds_on_first_use() {
        let lazy = Lazy::new(|| 7);
        assert!(format!("{lazy:?}").contains("false"));
        assert_eq!(*lazy.get(), 7);
        assert!(format!("{lazy:?}").contains("true"));
    }
}
