//! Durable Raft log, hard state and snapshots in redb, mirrored into the
//! [`LogCache`] that raft-rs reads from. Log entries and snapshot data are
//! sealed under the server key ([`AtRest`]); hard and conf state are not
//! sensitive and stay plain.
//!
//! Every `persist` is one redb write transaction, committed with fsync before
//! the Ready loop sends persisted messages or advances. On open, the log is
//! loaded back so the node restarts with everything it acknowledged: the
//! latest snapshot plus the log after it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prost::Message as _;
use shardline_proto::v1 as pb;

use protobuf::Message as PbMessage;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::at_rest::AtRest;
use crate::log_cache::LogCache;
use crate::write_stats::WriteStats;
use crate::MetaError;

/// Format 1: raw entry bytes (read once, migrated to v2 on open).
const ENTRIES_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries_v1");
/// Format 2: each entry as an [`AtRest`] value of row ("entry", index).
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries_v2");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_state_v1");
const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";
/// (index, term) of the last compacted entry: 16 bytes, little-endian.
const LOG_OFFSET: &str = "log_offset";
/// The latest snapshot's raft-rs metadata (index, term, conf state).
const SNAPSHOT_META: &str = "snapshot_meta";
/// The latest snapshot's data, an [`AtRest`] value of row ("snapshot", index).
const SNAPSHOT_DATA: &str = "snapshot_data";
/// Metadata servers learned from membership changes (`pb::MetaMembers`).
const MEMBERS: &str = "members";

pub struct RaftStore {
    db: Database,
    cache: LogCache,
    at_rest: AtRest,
    /// Stored entries at or below this index are covered by a snapshot.
    /// They are deleted a few at a time with later appends ([`trim`]), so
    /// a snapshot never stalls the Ready loop on thousands of deletes.
    trim_to: Mutex<u64>,
    stats: Arc<WriteStats>,
}

/// Deletes of covered entries per append: at least this many, and two per
/// entry appended (so the backlog always shrinks faster than the log grows).
const TRIM_PER_APPEND: usize = 16;

impl RaftStore {
    /// Open (or create) the store at `path`. A new store starts with
    /// `voters` as its configuration.
    pub fn open(path: &Path, voters: &[u64], at_rest: AtRest) -> Result<Self, MetaError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(ENTRIES)?;
            txn.open_table(STATE)?;
        }
        txn.commit()?;
        migrate_v1_entries(&db, &at_rest)?;

        let cache = LogCache::default();
        let txn = db.begin_read()?;
        let state = txn.open_table(STATE)?;
        let conf = match state.get(CONF_STATE)? {
            Some(v) => ConfState::parse_from_bytes(v.value())?,
            None => ConfState::from((voters.to_vec(), vec![])),
        };
        {
            let mut core = cache.wl();
            if let Some(v) = state.get(HARD_STATE)? {
                core.hard_state = HardState::parse_from_bytes(v.value())?;
            }
            if let Some(v) = state.get(LOG_OFFSET)? {
                core.offset = decode_offset(v.value())?;
            }
            if let Some(v) = state.get(SNAPSHOT_META)? {
                let meta = SnapshotMetadata::parse_from_bytes(v.value())?;
                let stored =
                    state.get(SNAPSHOT_DATA)?.ok_or_else(|| MetaError::Store("snapshot data missing".into()))?;
                let data = at_rest.open("snapshot", meta.index, stored.value())?;
                core.snapshot.set_metadata(meta);
                core.snapshot.data = data.into();
            }
            let mut entries = Vec::new();
            for row in txn.open_table(ENTRIES)?.range(core.offset.0 + 1..)? {
                let (k, v) = row?;
                entries.push(Entry::parse_from_bytes(&at_rest.open("entry", k.value(), v.value())?)?);
            }
            core.append(&entries)?;
            core.conf_state = conf.clone();
        }
        let trim_to = cache.rl().offset.0;
        drop(state);
        let store = RaftStore { db, cache, at_rest, trim_to: Mutex::new(trim_to), stats: Arc::default() };
        store.save_conf_state(&conf)?;
        Ok(store)
    }

    /// Count this store's writes in `stats`.
    pub fn set_stats(&mut self, stats: Arc<WriteStats>) {
        self.stats = stats;
    }

    /// The storage raft-rs reads (shares state with this store).
    pub fn cache(&self) -> LogCache {
        self.cache.clone()
    }

    /// The latest snapshot (index 0 and no data when there is none).
    pub fn snapshot(&self) -> Snapshot {
        self.cache.rl().snapshot.clone()
    }

    /// Durably append `entries` (replacing any conflicting suffix) and save
    /// `hard_state`, in one transaction.
    pub fn persist(&self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), MetaError> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            let trim_to = *self.trim_to.lock().unwrap_or_else(|e| e.into_inner());
            trim(&mut table, trim_to, (2 * entries.len()).max(TRIM_PER_APPEND))?;
            if let Some(first) = entries.first() {
                table.retain_in(first.index.., |_, _| false)?;
            }
            for e in entries {
                table.insert(e.index, self.at_rest.seal("entry", e.index, &e.write_to_bytes()?).as_slice())?;
            }
            if let Some(hs) = hard_state {
                txn.open_table(STATE)?.insert(HARD_STATE, hs.write_to_bytes()?.as_slice())?;
            }
        }
        txn.commit()?;
        self.stats.log_write(entries.len(), started.elapsed(), 1);
        let mut core = self.cache.wl();
        core.append(entries)?;
        if let Some(hs) = hard_state {
            core.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Record a new commit index (from a LightReady). Only in memory: the
    /// next hard-state write carries it, and a commit index lost in a crash
    /// is learned again from the leader (Raft does not need it durable).
    pub fn set_commit(&self, commit: u64) {
        let mut core = self.cache.wl();
        core.hard_state.commit = core.hard_state.commit.max(commit);
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

    /// Store a snapshot this server took of its own state at `meta.index`,
    /// and compact the log up to `compact_to` (≤ `meta.index`).
    #[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
    pub fn save_snapshot(&self, meta: SnapshotMetadata, data: Vec<u8>, compact_to: u64) -> Result<(), MetaError> {
        let (to, mut hs) = {
            let core = self.cache.rl();
            (compact_to.max(core.offset.0).min(core.last_index()), core.hard_state.clone())
        };
        let term =
            raft::Storage::term(&self.cache, to).map_err(|e| MetaError::Store(format!("compact to {to}: {e}")))?;
        let offset = (to, term);
        // The commit index must cover the snapshot when the server restarts.
        hs.commit = hs.commit.max(meta.index);
        let mut snap = Snapshot::default();
        snap.data = data.into();
        snap.set_metadata(meta);
        self.write_snapshot(&snap, offset, &hs, false)?;
        let mut core = self.cache.wl();
        core.compact(offset.0)?;
        core.hard_state.commit = hs.commit;
        core.snapshot = snap;
        Ok(())
    }

    /// Replace the whole log with a snapshot received from the leader.
    pub fn apply_snapshot(&self, snap: &Snapshot) -> Result<(), MetaError> {
        let meta = snap.get_metadata();
        let mut hs = self.cache.rl().hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        self.write_snapshot(snap, (meta.index, meta.term), &hs, true)?;
        self.cache.wl().install_snapshot(snap.clone());
        Ok(())
    }

    fn write_snapshot(&self, snap: &Snapshot, offset: (u64, u64), hs: &HardState, all: bool) -> Result<(), MetaError> {
        let meta = snap.get_metadata();
        let sealed = self.at_rest.seal("snapshot", meta.index, &snap.data);
        let txn = self.db.begin_write()?;
        {
            let mut state = txn.open_table(STATE)?;
            state.insert(SNAPSHOT_META, meta.write_to_bytes()?.as_slice())?;
            state.insert(SNAPSHOT_DATA, sealed.as_slice())?;
            state.insert(LOG_OFFSET, encode_offset(offset).as_slice())?;
            state.insert(HARD_STATE, hs.write_to_bytes()?.as_slice())?;
            if all {
                state.insert(CONF_STATE, meta.get_conf_state().write_to_bytes()?.as_slice())?;
            }
            if all {
                txn.open_table(ENTRIES)?.retain(|_, _| false)?;
            }
        }
        txn.commit()?;
        self.stats.fsync();
        // The entries up to the offset are left to `trim`.
        let mut trim_to = self.trim_to.lock().unwrap_or_else(|e| e.into_inner());
        *trim_to = (*trim_to).max(offset.0);
        Ok(())
    }
}

/// Delete up to `n` of the oldest stored entries, none above `to`.
fn trim(table: &mut redb::Table<u64, &[u8]>, to: u64, n: usize) -> Result<(), MetaError> {
    let Some(first) = table.first()?.map(|(k, _)| k.value()) else { return Ok(()) };
    if first <= to {
        table.retain_in(first..=to.min(first + n as u64 - 1), |_, _| false)?;
    }
    Ok(())
}

fn encode_offset((index, term): (u64, u64)) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&index.to_le_bytes());
    out[8..].copy_from_slice(&term.to_le_bytes());
    out
}

fn decode_offset(v: &[u8]) -> Result<(u64, u64), MetaError> {
    let bad = || MetaError::Store("log offset is not 16 bytes".into());
    let index = v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).ok_or_else(bad)?;
    let term = v.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).ok_or_else(bad)?;
    Ok((index, term))
}

/// Move a format-1 log (plain entries) into the format-2 table, sealed.
fn migrate_v1_entries(db: &Database, at_rest: &AtRest) -> Result<(), MetaError> {
    let txn = db.begin_write()?;
    let rows = match txn.open_table(ENTRIES_V1) {
        Ok(t) if !t.is_empty()? => {
            let mut rows = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                rows.push((k.value(), at_rest.seal("entry", k.value(), v.value())));
            }
            rows
        }
        _ => Vec::new(),
    };
    if rows.is_empty() {
        return Ok(()); // dropping txn aborts it: nothing was changed
    }
    {
        let mut table = txn.open_table(ENTRIES)?;
        for (k, v) in &rows {
            table.insert(*k, v.as_slice())?;
        }
    }
    txn.delete_table(ENTRIES_V1)?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    #[allow(clippy::field_reassign_with_default)]
    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        let mut e = Entry::default();
        e.index = index;
        e.term = term;
        e.data = data.to_vec().into();
        e
    }

    fn stored_keys(s: &RaftStore) -> Vec<u64> {
        let txn = s.db.begin_read().unwrap();
        let table = txn.open_table(ENTRIES).unwrap();
        table.iter().unwrap().map(|r| r.unwrap().0.value()).collect()
    }

    #[test]
    #[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
    fn entries_a_snapshot_covers_are_trimmed_with_later_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let s = RaftStore::open(&path, &[1], AtRest::plain()).unwrap();
            let all: Vec<Entry> = (1..=100).map(|i| entry(i, 1, b"x")).collect();
            s.persist(&all, None).unwrap();
            let mut meta = SnapshotMetadata::default();
            meta.index = 90;
            meta.term = 1;
            s.save_snapshot(meta, b"state".to_vec(), 60).unwrap();
            assert_eq!(stored_keys(&s).len(), 100, "the snapshot itself deletes nothing");
            assert_eq!(s.cache().first_index().unwrap(), 61, "but the log in memory starts after it");
            s.persist(&[entry(101, 1, b"y")], None).unwrap();
            assert_eq!(stored_keys(&s).first(), Some(&(TRIM_PER_APPEND as u64 + 1)), "one append trims a few");
        }
        // Reopened with covered entries still stored: they are not loaded.
        let s = RaftStore::open(&path, &[1], AtRest::plain()).unwrap();
        assert_eq!(s.cache().first_index().unwrap(), 61);
        assert_eq!(s.cache().last_index().unwrap(), 101);
        for i in 102..=110 {
            s.persist(&[entry(i, 1, b"z")], None).unwrap();
        }
        let keys = stored_keys(&s);
        assert_eq!(keys.first(), Some(&61), "trimmed up to the offset and no further");
        assert_eq!(keys.len(), 50);
    }

    #[test]
    #[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
    fn survives_reopen_and_truncates_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let s = RaftStore::open(&path, &[1, 2, 3], AtRest::plain()).unwrap();
            let mut hs = HardState::default();
            hs.term = 2;
            hs.commit = 2;
            s.persist(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")], Some(&hs)).unwrap();
            // A new leader overwrites index 3 onwards.
            s.persist(&[entry(3, 2, b"C")], None).unwrap();
        }
        let s = RaftStore::open(&path, &[9], AtRest::plain()).unwrap();
        let mem = s.cache();
        assert_eq!(mem.last_index().unwrap(), 3);
        assert_eq!(mem.term(3).unwrap(), 2);
        let st = mem.initial_state().unwrap();
        assert_eq!(st.hard_state.commit, 2);
        assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
    }
}
