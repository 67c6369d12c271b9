//! Durable Raft state of one metadata server, mirrored into the
//! [`LogCache`] that raft-rs reads from.
//!
//! - The log (entries and hard state) lives in append-only segment files
//!   under `raft-log/` (`segment_log.rs`), written by the log writer thread
//!   (`log_writer.rs`): one write and one fsync per batch.
//! - Snapshots, the conf state, the member list, the log offset (the last
//!   entry a snapshot compacted away) and the log's generation stay in redb
//!   (`raft.redb`): they change rarely.
//!
//! Log entries and snapshot data are sealed under the server key
//! ([`AtRest`]); hard and conf state are not sensitive and stay plain.
//!
//! Before format 2 of this store the log was in redb too; such a store is
//! moved to segment files once, when it is opened (`log_migrate.rs`).
//!
//! Entries handed to [`RaftStore::append`] are in the cache at once (raft-rs
//! reads them back before they are durable, to send them to followers) and
//! on disk when the writer reports their batch persisted; raft-rs counts
//! only persisted entries towards commitment and application.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use protobuf::Message as PbMessage;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use redb::{Database, TableDefinition};
use shardline_proto::v1 as pb;

use crate::at_rest::{AtRest, Row};
use crate::log_cache::LogCache;
use crate::log_migrate;
use crate::log_writer::{Batch, LogWriter, WriterLinks};
use crate::node::Input;
use crate::segment_log::{Record, SegmentLog};
use crate::snapshot_job::{Saved, SnapshotPlan, SnapshotSaver};
use crate::transport::Outbox;
use crate::write_stats::WriteStats;
use crate::MetaError;

pub(crate) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_state_v1");
pub(crate) const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";
/// (index, term) of the last compacted entry: 16 bytes, little-endian.
const LOG_OFFSET: &str = "log_offset";
/// The latest snapshot's raft-rs metadata (index, term, conf state).
pub(crate) const SNAPSHOT_META: &str = "snapshot_meta";
/// The latest snapshot's data, an [`AtRest`] value of row ("snapshot",
/// index, term).
const SNAPSHOT_DATA: &str = "snapshot_data";
/// Metadata servers learned from membership changes (`pb::MetaMembers`).
const MEMBERS: &str = "members";
/// The segment log's generation (u64 LE): a snapshot received from the
/// leader replaces the log and starts the next one.
const LOG_GENERATION: &str = "log_generation";

/// The folder of the segment log inside a server's folder.
pub const LOG_DIR: &str = "raft-log";
/// The redb file inside a server's folder.
pub const DB_FILE: &str = "raft.redb";

pub struct RaftStore {
    db: Arc<Database>,
    /// Held while a snapshot is written (see `snapshot_job.rs`).
    snap_lock: Arc<Mutex<()>>,
    /// The Ready loop's input (after [`RaftStore::start_writer`]).
    notify: Option<Sender<Input>>,
    cache: LogCache,
    at_rest: Arc<AtRest>,
    generation: u64,
    /// The log until [`RaftStore::start_writer`] hands it to its thread.
    log: Option<SegmentLog>,
    writer: Option<LogWriter>,
    stats: Arc<WriteStats>,
}

impl RaftStore {
    /// Open (or create) the store in `dir`. A new store starts with
    /// `voters` as its configuration.
    pub fn open(dir: &Path, voters: &[u64], at_rest: AtRest) -> Result<Self, MetaError> {
        let db = Database::create(dir.join(DB_FILE))?;
        let txn = db.begin_write()?;
        txn.open_table(STATE)?;
        txn.commit()?;
        log_migrate::to_segments(&db, &dir.join(LOG_DIR), &at_rest)?;

        let txn = db.begin_read()?;
        let state = txn.open_table(STATE)?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, MetaError> { Ok(state.get(k)?.map(|v| v.value().to_vec())) };
        let conf = match get(CONF_STATE)? {
            Some(v) => ConfState::parse_from_bytes(&v)?,
            None => ConfState::from((voters.to_vec(), vec![])),
        };
        let generation = get(LOG_GENERATION)?.map(|v| decode_u64(&v)).transpose()?.unwrap_or(0);
        let cache = LogCache::default();
        let mut core = cache.wl();
        if let Some(v) = get(HARD_STATE)? {
            core.hard_state = HardState::parse_from_bytes(&v)?;
        }
        if let Some(v) = get(LOG_OFFSET)? {
            core.offset = decode_offset(&v)?;
        }
        if let Some(v) = get(SNAPSHOT_META)? {
            let meta = SnapshotMetadata::parse_from_bytes(&v)?;
            let stored = get(SNAPSHOT_DATA)?.ok_or_else(|| MetaError::Store("snapshot data missing".into()))?;
            core.snapshot.data = at_rest.open("snapshot", meta.index, Some(meta.term), &stored)?.into();
            core.snapshot.set_metadata(meta);
        }
        drop(state);
        let (log, records) = SegmentLog::open(&dir.join(LOG_DIR), generation)?;
        let (entries, hs) = replay(records, core.offset.0, &at_rest)?;
        core.append(&entries)?;
        if let Some(hs) = hs {
            let commit = core.hard_state.commit.max(hs.commit);
            core.hard_state = hs;
            core.hard_state.commit = commit;
        }
        // The commit index is not written with every change: never beyond
        // the log, never behind the snapshot.
        let snap_index = core.snapshot.get_metadata().index;
        core.hard_state.commit = core.hard_state.commit.max(snap_index).min(core.last_index());
        core.conf_state = conf.clone();
        drop(core);
        let store = RaftStore {
            db: Arc::new(db),
            snap_lock: Arc::default(),
            notify: None,
            cache,
            at_rest: Arc::new(at_rest),
            generation,
            log: Some(log),
            writer: None,
            stats: Arc::default(),
        };
        store.save_conf_state(&conf)?;
        Ok(store)
    }

    /// Start the log writer thread: it sends persisted messages through
    /// `outbox` and tells the Ready loop through `notify`.
    pub fn start_writer(
        &mut self,
        outbox: Outbox,
        notify: Sender<Input>,
        stats: Arc<WriteStats>,
    ) -> Result<(), MetaError> {
        let log = self.log.take().ok_or_else(|| MetaError::Store("the log writer is already running".into()))?;
        self.stats = stats.clone();
        self.notify = Some(notify.clone());
        let links = WriterLinks { at_rest: self.at_rest.clone(), outbox, notify, stats };
        self.writer = Some(LogWriter::start(log, links)?);
        Ok(())
    }

    fn writer(&self) -> Result<&LogWriter, MetaError> {
        self.writer.as_ref().ok_or_else(|| MetaError::Store("the log writer is not running".into()))
    }

    /// The storage raft-rs reads (shares state with this store).
    pub fn cache(&self) -> LogCache {
        self.cache.clone()
    }

    /// The latest snapshot (index 0 and no data when there is none).
    pub fn snapshot(&self) -> Snapshot {
        self.cache.rl().snapshot.clone()
    }

    /// Hand a Ready's entries and hard state to the log writer (replacing
    /// any conflicting suffix); raft-rs reads them from the cache at once.
    pub fn append(&self, batch: Batch) -> Result<(), MetaError> {
        {
            let mut core = self.cache.wl();
            core.append(&batch.entries)?;
            if let Some(hs) = &batch.hard_state {
                core.hard_state = hs.clone();
            }
        }
        self.writer()?.append(batch)
    }

    /// Like [`RaftStore::append`], but written (and its messages sent) before
    /// this returns, on the calling thread. Only when nothing handed to
    /// `append` is still waiting to be written.
    pub fn append_now(&self, batch: Batch) -> Result<(), MetaError> {
        {
            let mut core = self.cache.wl();
            core.append(&batch.entries)?;
            if let Some(hs) = &batch.hard_state {
                core.hard_state = hs.clone();
            }
        }
        self.writer()?.write_now(batch)
    }

    /// Wait until everything handed to [`RaftStore::append`] is durable.
    pub fn barrier(&self) -> Result<(), MetaError> {
        self.writer()?.barrier()
    }

    pub fn save_conf_state(&self, cs: &ConfState) -> Result<(), MetaError> {
        let txn = self.db.begin_write()?;
        txn.open_table(STATE)?.insert(CONF_STATE, cs.write_to_bytes()?.as_slice())?;
        txn.commit()?;
        self.stats.fsync();
        self.cache.wl().conf_state = cs.clone();
        Ok(())
    }

    /// Remember every member's address (membership changes outlive the log).
    pub fn save_members(&self, members: &BTreeMap<u64, String>) -> Result<(), MetaError> {
        let list = pb::MetaMembers {
            voters: members.iter().map(|(&id, addr)| pb::MetaMember { id, addr: addr.clone() }).collect(),
        };
        let txn = self.db.begin_write()?;
        txn.open_table(STATE)?.insert(MEMBERS, list.encode_to_vec().as_slice())?;
        txn.commit()?;
        self.stats.fsync();
        Ok(())
    }

    /// The members saved by [`RaftStore::save_members`] (empty if none).
    pub fn members(&self) -> Result<BTreeMap<u64, String>, MetaError> {
        let txn = self.db.begin_read()?;
        let state = txn.open_table(STATE)?;
        let Some(v) = state.get(MEMBERS)? else { return Ok(BTreeMap::new()) };
        let list = pb::MetaMembers::decode(v.value()).map_err(|e| MetaError::Store(format!("decode members: {e}")))?;
        Ok(list.voters.into_iter().map(|m| (m.id, m.addr)).collect())
    }

    /// Plan a snapshot of this server's own state at `meta.index`, to
    /// compact the log up to `compact_to` (≤ `meta.index`).
    pub fn plan_snapshot(&self, meta: SnapshotMetadata, compact_to: u64) -> Result<SnapshotPlan, MetaError> {
        let (to, mut hs) = {
            let core = self.cache.rl();
            (compact_to.max(core.offset.0).min(core.last_index()), core.hard_state.clone())
        };
        let term =
            raft::Storage::term(&self.cache, to).map_err(|e| MetaError::Store(format!("compact to {to}: {e}")))?;
        // The commit index must cover the snapshot when the server restarts.
        hs.commit = hs.commit.max(meta.index);
        Ok(SnapshotPlan { meta, offset: (to, term), hard_state: hs })
    }

    /// What a snapshot job needs to store a snapshot.
    pub fn saver(&self) -> SnapshotSaver {
        SnapshotSaver {
            db: self.db.clone(),
            at_rest: self.at_rest.clone(),
            lock: self.snap_lock.clone(),
            stats: self.stats.clone(),
        }
    }

    /// The Ready loop's input, for jobs to report to.
    pub fn notifier(&self) -> Result<Sender<Input>, MetaError> {
        self.notify.clone().ok_or_else(|| MetaError::Store("the log writer is not running".into()))
    }

    /// A snapshot job stored its snapshot: keep it for followers and compact
    /// the log behind it (unless a newer snapshot came from the leader
    /// meanwhile). Whether it was taken.
    pub fn finish_snapshot(&self, saved: Saved) -> Result<bool, MetaError> {
        let Saved { plan, data, .. } = saved;
        {
            let mut core = self.cache.wl();
            if core.snapshot.get_metadata().index >= plan.meta.index {
                return Ok(false);
            }
            core.compact(plan.offset.0)?;
            core.hard_state.commit = core.hard_state.commit.max(plan.hard_state.commit);
            core.snapshot.data = data.into();
            core.snapshot.set_metadata(plan.meta);
        }
        // The segments it covers go now that the offset is durable.
        if let Some(w) = &self.writer {
            w.compact(plan.offset.0)?;
        }
        Ok(true)
    }

    /// Plan, store and finish a snapshot on the calling thread.
    pub fn save_snapshot(&self, meta: SnapshotMetadata, data: Vec<u8>, compact_to: u64) -> Result<(), MetaError> {
        let plan = self.plan_snapshot(meta, compact_to)?;
        if let Some(saved) = self.saver().save(plan, data)? {
            self.finish_snapshot(saved)?;
        }
        Ok(())
    }

    /// Replace the whole log with a snapshot received from the leader.
    /// Everything appended before must be durable ([`RaftStore::barrier`]).
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<(), MetaError> {
        let meta = snap.get_metadata();
        let mut hs = self.cache.rl().hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        let generation = self.generation + 1;
        // The new generation is recorded with the snapshot, in one
        // transaction: a crash before the log is reset below leaves
        // segments of the old generation, which the next open deletes.
        self.write_snapshot(snap, (meta.index, meta.term), &hs, Some(generation))?;
        self.generation = generation;
        self.writer()?.reset(generation, hs.clone())?;
        let mut core = self.cache.wl();
        core.install_snapshot(snap.clone());
        core.hard_state.commit = core.hard_state.commit.max(hs.commit);
        Ok(())
    }

    fn write_snapshot(
        &self,
        snap: &Snapshot,
        offset: (u64, u64),
        hs: &HardState,
        generation: Option<u64>,
    ) -> Result<(), MetaError> {
        let _held = self.snap_lock.lock().unwrap_or_else(|e| e.into_inner());
        store_snapshot(&self.db, &self.at_rest, snap.get_metadata(), &snap.data, offset, hs, generation)?;
        self.stats.fsync();
        Ok(())
    }
}

/// One redb transaction: the snapshot, the log offset, the hard state and
/// (for a snapshot from the leader) the conf state and a new log generation.
pub(crate) fn store_snapshot(
    db: &Database,
    at_rest: &AtRest,
    meta: &SnapshotMetadata,
    data: &[u8],
    offset: (u64, u64),
    hs: &HardState,
    generation: Option<u64>,
) -> Result<(), MetaError> {
    let sealed = at_rest.seal(Row::snapshot(meta.index, meta.term), data);
    let txn = db.begin_write()?;
    {
        let mut state = txn.open_table(STATE)?;
        state.insert(SNAPSHOT_META, meta.write_to_bytes()?.as_slice())?;
        state.insert(SNAPSHOT_DATA, sealed.as_slice())?;
        state.insert(LOG_OFFSET, encode_offset(offset).as_slice())?;
        state.insert(HARD_STATE, hs.write_to_bytes()?.as_slice())?;
        if let Some(g) = generation {
            state.insert(CONF_STATE, meta.get_conf_state().write_to_bytes()?.as_slice())?;
            state.insert(LOG_GENERATION, g.to_le_bytes().as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// The log after `offset` as the records leave it (a later record for an
/// index replaces that entry and everything after it), and the last hard
/// state written.
fn replay(records: Vec<Record>, offset: u64, at_rest: &AtRest) -> Result<(Vec<Entry>, Option<HardState>), MetaError> {
    let mut stored: Vec<(u64, Option<u64>, Vec<u8>)> = Vec::new();
    let mut hs = None;
    for r in records {
        match r {
            Record::HardState(b) => hs = Some(b),
            Record::Entry { index, .. } if index <= offset => {}
            Record::Entry { index, term, stored: value } => {
                let next = offset + 1 + stored.len() as u64;
                if index > next {
                    return Err(MetaError::Store(format!(
                        "raft log: entry {index} follows entry {} (entries are missing)",
                        next - 1
                    )));
                }
                stored.truncate((index - offset - 1) as usize);
                stored.push((index, term, value));
            }
        }
    }
    let mut entries = Vec::with_capacity(stored.len());
    for (index, term, value) in stored {
        let e = Entry::parse_from_bytes(&at_rest.open("entry", index, term, &value)?)?;
        if e.index != index || term.is_some_and(|t| t != e.term) {
            return Err(MetaError::Store(format!(
                "raft log: the record for entry {index} (term {}) holds entry {} of term {}",
                term.map_or_else(|| "unknown".to_string(), |t| t.to_string()),
                e.index,
                e.term
            )));
        }
        entries.push(e);
    }
    Ok((entries, hs.map(|b| HardState::parse_from_bytes(&b)).transpose()?))
}

fn encode_offset((index, term): (u64, u64)) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&index.to_le_bytes());
    out[8..].copy_from_slice(&term.to_le_bytes());
    out
}

fn decode_offset(v: &[u8]) -> Result<(u64, u64), MetaError> {
    if v.len() != 16 {
        return Err(MetaError::Store("log offset is not 16 bytes".into()));
    }
    Ok((decode_u64(&v[..8])?, decode_u64(&v[8..])?))
}

pub(crate) fn decode_u64(v: &[u8]) -> Result<u64, MetaError> {
    let b: [u8; 8] = v.try_into().map_err(|_| MetaError::Store("a stored number is not 8 bytes".into()))?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
#[path = "raft_store_tests.rs"]
mod tests;
