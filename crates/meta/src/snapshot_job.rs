//! Snapshots taken off the Ready loop. The loop copies the state machine
//! (a clone in memory) and plans the snapshot from the log's state; a
//! thread of its own encodes, seals and stores it in redb; the loop then
//! compacts the log behind it ([`crate::raft_store::RaftStore::finish_snapshot`]).
//! So a large namespace costs the loop the copy, not the encoding and the
//! write of megabytes.
//!
//! A snapshot costs time in proportion to the state (encoding, sealing and
//! writing it; about 200 bytes per file), so in a large namespace they are
//! taken less often ([`interval`]): with a fixed interval, filling a
//! directory of 1,000,000 files snapshotted every 10,000 entries kept a job
//! running all the time on every server, each one longer than the last.
//!
//! A snapshot received from the leader may be installed while a job runs:
//! both take the store's snapshot lock, and a job whose snapshot is no
//! newer than the stored one stores nothing.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as PbMessage;
use raft::prelude::{HardState, SnapshotMetadata};
use redb::Database;

use crate::at_rest::AtRest;
use crate::node::Input;
use crate::raft_store::{store_snapshot, SNAPSHOT_META, STATE};
use crate::snapshot;
use crate::state_machine::StateMachine;
use crate::write_stats::WriteStats;
use crate::MetaError;

/// Applied entries between snapshots: `every`, or one entry per
/// [`INODES_PER_ENTRY`] inodes when that is more, so a snapshot's cost
/// (in proportion to the inodes) spread over the entries between two
/// snapshots stays constant per entry whatever the namespace's size. The
/// log kept between snapshots grows with it, staying a small fraction of
/// the snapshot's size.
pub fn interval(every: u64, inodes: usize) -> u64 {
    every.max(inodes as u64 / INODES_PER_ENTRY)
}

/// See [`interval`]: with 1,000,000 files, a snapshot every 250,000 entries.
pub const INODES_PER_ENTRY: u64 = 4;

/// What the loop decided: the snapshot's metadata, the log offset to
/// compact to and the hard state to store with it.
pub struct SnapshotPlan {
    pub meta: SnapshotMetadata,
    pub offset: (u64, u64),
    pub hard_state: HardState,
}

/// A stored snapshot, for the loop to compact the log behind.
pub struct Saved {
    pub plan: SnapshotPlan,
    pub data: Vec<u8>,
    /// Time to encode, seal and store it.
    pub took: Duration,
}

/// What a job needs of the store (shared with it).
#[derive(Clone)]
pub struct SnapshotSaver {
    pub db: Arc<Database>,
    pub at_rest: Arc<AtRest>,
    /// Held while a snapshot is written, by jobs and by installs.
    pub lock: Arc<Mutex<()>>,
    pub stats: Arc<WriteStats>,
}

impl SnapshotSaver {
    /// Store `data` as planned, unless a snapshot at least as new is
    /// already stored (None then).
    pub fn save(&self, plan: SnapshotPlan, data: Vec<u8>) -> Result<Option<Saved>, MetaError> {
        let started = Instant::now();
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let stored = {
            let txn = self.db.begin_read()?;
            let state = txn.open_table(STATE)?;
            let meta = state.get(SNAPSHOT_META)?;
            match meta {
                Some(v) => SnapshotMetadata::parse_from_bytes(v.value())?.index,
                None => 0,
            }
        };
        if stored >= plan.meta.index {
            return Ok(None);
        }
        store_snapshot(&self.db, &self.at_rest, &plan.meta, &data, plan.offset, &plan.hard_state, None)?;
        self.stats.fsync();
        Ok(Some(Saved { plan, data, took: started.elapsed() }))
    }
}

/// Encode `sm` with `members`, store it as planned on a thread of its own,
/// and report to the loop with `Input::SnapshotSaved`.
pub fn spawn(
    saver: SnapshotSaver,
    sm: StateMachine,
    members: BTreeMap<u64, String>,
    plan: SnapshotPlan,
    notify: Sender<Input>,
) -> Result<(), MetaError> {
    std::thread::Builder::new().name("raft-snapshot".into()).spawn(move || {
        let started = Instant::now();
        let data = snapshot::encode(&sm, &members);
        drop(sm);
        let r = saver.save(plan, data).map(|saved| saved.map(|s| Saved { took: started.elapsed(), ..s }));
        let r = r.map_err(|e| e.to_string());
        drop(saver); // the store is whole again before the loop hears of it

        let _ = notify.send(Input::SnapshotSaved(r));
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_grows_with_the_namespace_past_the_configured_one() {
        assert_eq!(interval(10_000, 1), 10_000);
        assert_eq!(interval(10_000, 40_000), 10_000);
        assert_eq!(interval(10_000, 1_000_000), 250_000);
        assert_eq!(interval(50, 1_000), 250, "a small --snapshot-every too");
        assert_eq!(interval(1, 0), 1);
    }
}
