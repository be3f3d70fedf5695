//! The harness's own tests, one binary with a module per helper: the real Alertmanager, anvil,
//! the committed contract artifacts, Kafka, throwaway databases and the TCP proxy. One module:
//! `cargo test -p tripwire-testkit --test it anvil::`.

mod alertmanager;
mod anvil;
mod artifacts;
mod kafka;
mod postgres;
mod proxy;
