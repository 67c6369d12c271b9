//! Shardline's vocabulary: identifiers, layouts, error codes, placement and
//! file mode rules.
//!
//! The bottom layer: no I/O, no async, no wire types. Everything here is a
//! plain value or a pure function, so every other crate can share it and
//! placement can be simulated at any scale without a cluster.

pub mod error;
pub mod ids;
pub mod layout;
pub mod mode;
pub mod placement;

pub use error::ErrorCode;
pub use ids::{Ino, NodeId, ShardKey, ROOT_INO};
pub use layout::{Layout, LayoutError};
pub use placement::{build_groups, pg_of, rebalance, Candidate, PlacementError};
