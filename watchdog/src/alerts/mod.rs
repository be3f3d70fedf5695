//! From findings to alerts: the [`incidents::IncidentBook`] decides what is an incident (one per
//! key, updated, cooled down, storm-capped, retracted on reorgs) and [`client`] renders incidents
//! as Alertmanager alerts and posts them.

pub mod client;
pub mod incidents;

pub use client::{Alert, Client, DeliveryError, Render};
pub use incidents::{Changes, Incident, IncidentBook, Policy, State};

#[cfg(test)]
mod tests;
