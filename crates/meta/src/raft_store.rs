//! Durable Raft log and hard state in redb, mirrored into raft-rs's
//! `MemStorage` (which raft-rs reads from).
//!
//! Every `persist` is one redb write transaction, committed with fsync before
//! the Ready loop sends persisted messages or advances. On open, the log is
//! loaded back so the node restarts with everything it acknowledged.

use std::path::Path;

use protobuf::Message as PbMessage;
use raft::prelude::{ConfState, Entry, HardState};
use raft::storage::MemStorage;
use redb::{Database, ReadableTable, TableDefinition};

use crate::MetaError;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries_v1");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_state_v1");
const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";

pub struct RaftStore {
    db: Database,
    mem: MemStorage,
}

impl RaftStore {
    /// Open (or create) the store at `path`. A new store starts with
    /// `voters` as its configuration.
    pub fn open(path: &Path, voters: &[u64]) -> Result<Self, MetaError> {
        let db = Database::create(path)?;
        let mem = MemStorage::new();
        let txn = db.begin_write()?;
        {
            txn.open_table(ENTRIES)?;
            txn.open_table(STATE)?;
        }
        txn.commit()?;

        let txn = db.begin_read()?;
        let state = txn.open_table(STATE)?;
        let conf = match state.get(CONF_STATE)? {
            Some(v) => ConfState::parse_from_bytes(v.value())?,
            None => ConfState::from((voters.to_vec(), vec![])),
        };
        let hard = match state.get(HARD_STATE)? {
            Some(v) => Some(HardState::parse_from_bytes(v.value())?),
            None => None,
        };
        let mut entries = Vec::new();
        for row in txn.open_table(ENTRIES)?.iter()? {
            let (_, v) = row?;
            entries.push(Entry::parse_from_bytes(v.value())?);
        }
        drop(state);
        {
            let mut core = mem.wl();
            core.set_conf_state(conf.clone());
            core.append(&entries)?;
            if let Some(hs) = hard {
                core.set_hardstate(hs);
            }
        }
        let store = RaftStore { db, mem };
        store.save_conf_state(&conf)?;
        Ok(store)
    }

    /// The storage raft-rs reads (shares state with this store).
    pub fn mem(&self) -> MemStorage {
        self.mem.clone()
    }

    /// Durably append `entries` (replacing any conflicting suffix) and save
    /// `hard_state`, in one transaction.
    pub fn persist(&self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), MetaError> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            if let Some(first) = entries.first() {
                table.retain_in(first.index.., |_, _| false)?;
            }
            for e in entries {
                table.insert(e.index, e.write_to_bytes()?.as_slice())?;
            }
            if let Some(hs) = hard_state {
                txn.open_table(STATE)?.insert(HARD_STATE, hs.write_to_bytes()?.as_slice())?;
            }
        }
        txn.commit()?;
        let mut core = self.mem.wl();
        core.append(entries)?;
        if let Some(hs) = hard_state {
            core.set_hardstate(hs.clone());
        }
        Ok(())
    }

    /// Record a new commit index (from a LightReady). Only in memory: the
    /// next hard-state write carries it, and a commit index lost in a crash
    /// is learned again from the leader (Raft does not need it durable).
    pub fn set_commit(&self, commit: u64) {
        let _ = self.mem.wl().commit_to(commit);
    }

    pub fn save_conf_state(&self, cs: &ConfState) -> Result<(), MetaError> {
        let txn = self.db.begin_write()?;
        txn.open_table(STATE)?.insert(CONF_STATE, cs.write_to_bytes()?.as_slice())?;
        txn.commit()?;
        self.mem.wl().set_conf_state(cs.clone());
        Ok(())
    }
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

    #[test]
    #[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
    fn survives_reopen_and_truncates_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let s = RaftStore::open(&path, &[1, 2, 3]).unwrap();
            let mut hs = HardState::default();
            hs.term = 2;
            hs.commit = 2;
            s.persist(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")], Some(&hs)).unwrap();
            // A new leader overwrites index 3 onwards.
            s.persist(&[entry(3, 2, b"C")], None).unwrap();
        }
        let s = RaftStore::open(&path, &[9]).unwrap();
        let mem = s.mem();
        assert_eq!(mem.last_index().unwrap(), 3);
        assert_eq!(mem.term(3).unwrap(), 2);
        let st = mem.initial_state().unwrap();
        assert_eq!(st.hard_state.commit, 2);
        assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
    }
}
