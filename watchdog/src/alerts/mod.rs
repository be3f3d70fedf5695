//! From findings to alerts: the [`incidents::IncidentBook`] decides what is an incident (one per
//! key, updated, cooled down, storm-capped, retracted on reorgs), [`client`] renders incidents
//! as Alertmanager alerts and posts them, and [`delivery`] does so from a queue per Alertmanager.

pub mod client;
pub mod delivery;
pub use tripwire_detect::incidents;

pub use client::{Alert, Client, DeliveryError, Render};
pub use delivery::Deliveries;
pub use incidents::{Changes, Incident, IncidentBook, Policy, State};

#[cfg(test)]
mod tests;
