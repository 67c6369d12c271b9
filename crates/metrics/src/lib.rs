//! Prometheus metrics for every Shardline process: the metric families the
//! servers and mounts update (`families.rs`), and the `/metrics` endpoint
//! that serves them in the Prometheus text format (`exporter.rs`).
//!
//! One process registers its metrics once, in the default registry: a
//! `shardline data` process with several disks labels per-disk values by
//! target id. Metric names start with `shardline_`; names and labels never
//! carry a file name, a key or file contents.

pub mod exporter;
pub mod families;

pub use exporter::{encode, MetricsServer};
pub use families::*;
