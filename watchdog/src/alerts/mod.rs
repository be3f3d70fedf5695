//! From findings to alerts: the [`incidents::IncidentBook`] decides what is an incident (one per
//! key, updated, cooled down, storm-capped, retracted on reorgs), [`client`] renders incidents
//! as Alertmanager alerts and posts them, and [`delivery`] does so from a queue per Alertmanager,
//! through the [`AlertSink`] trait ([`sink`]: the client is the production sink).

pub mod client;
pub mod delivery;
pub mod sink;
pub use tripwire_detect::incidents;

pub use client::{Alert, Client, DeliveryError, Render};
pub use delivery::Deliveries;
pub use incidents::{Changes, Incident, IncidentBook, Policy, State};
pub use sink::AlertSink;

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod tests;
