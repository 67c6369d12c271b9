//! The metadata service: a Raft-replicated namespace.
//!
//! Layers, bottom up: [`namespace`] and [`registry`] are plain values;
//! [`state_machine`] applies wire requests to them deterministically;
//! [`raft_store`] keeps Raft's state durable (the log in append-only
//! [`segment_log`] files written by the [`log_writer`] thread with group
//! commit, snapshots in redb); [`node`] is the one Ready loop; [`transport`] carries Raft messages to peers; [`service`]
//! answers requests (mutations through the log, queries under the leader's
//! read lease ([`lease`]) or through ReadIndex);
//! [`authz`] decides who may send what and [`identity`] which uid/gid a
//! client certificate acts as;
//! [`raft_guard`] checks every Raft message from the network before raft-rs
//! sees it; [`caps`] adds shard capabilities to the answers that need them;
//! [`server`] wires it together.

pub mod at_rest;
pub mod authz;
pub mod cache_leases;
pub mod caps;
pub mod error;
pub mod fs_usage;
pub mod identity;
pub mod lease;
pub mod log_cache;
pub mod log_migrate;
pub mod log_writer;
pub mod membership;
mod metrics_publish;
pub mod namespace;
pub mod node;
pub mod node_io;
mod op_names;
mod pending_change;
pub mod perm;
pub mod perm_scope;
pub mod raft_guard;
pub mod raft_store;
pub mod read_view;
pub mod registry;
pub mod segment;
pub mod segment_log;
pub mod server;
pub mod service;
mod session_set;
pub mod snapshot;
pub mod snapshot_job;
pub mod snapshot_stream;
pub mod state_machine;
pub mod transport;
pub mod wire;
pub mod write_stats;

#[cfg(test)]
mod bigdir_tests;
#[cfg(test)]
mod fuzz_raft_tests;
#[cfg(test)]
mod fuzz_seeds;
#[cfg(test)]
mod fuzz_service_tests;

pub use error::MetaError;
pub use server::{run, MetaConfig};
