//! The RPC pool's integration tests, in one test binary (`it`): the pool against anvil through
//! the fault-injecting JSON-RPC proxy of `testkit`. Needs `anvil` on `PATH`.
//!
//! Every test of the binary: `cargo test -p tripwire-rpc --test it`.

mod transactions;
