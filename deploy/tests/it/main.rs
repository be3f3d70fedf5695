//! The deploy crate's integration tests, one test binary (`it`) with a module per concern: the
//! stack's files agree with each other ([`compose`]), the compose services run as local processes
//! with their own files ([`stack`], on the harness in [`common`]), Tripwire on a real Apache Kafka
//! broker that is killed and restarted, and scaled out ([`kafka`]), the runbooks' commands exist
//! and their links, index and names hold ([`runbooks`]), and the runbooks' procedures run against
//! real services ([`drills`]).
//!
//! Run one module with its path as the filter, e.g.
//! `cargo test -p tripwire-deploy --test it drills::`, or one test by its name.

mod common;
mod compose;
mod drills;
mod kafka;
mod runbooks;
mod stack;
