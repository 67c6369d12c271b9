//! Store formats. Format 1 kept the Raft log in redb tables beside the rest
//! of the state: `raft_entries_v1` (entries in the clear, from before
//! sealing at rest) and `raft_entries_v2` (each entry an [`AtRest`] value of
//! row ("entry", index)). Format 2 keeps the log in segment files
//! (`segment_log.rs`) and says so in the state table (`log_format` = 2).
//!
//! A format-1 store is moved once, atomically: its entries after the log
//! offset (each opened and sealed again as [`AtRest`] writes values now,
//! bound to its index, term and key id) and its hard state are written to
//! a fresh segment log and made
//! durable, then one redb transaction drops the old tables and records
//! format 2. A crash before that transaction leaves the store in format 1
//! (the half-written segment folder is discarded and rewritten next time).

use std::path::Path;

use protobuf::Message as _;
use raft::prelude::Entry;
use redb::{Database, TableDefinition, TableError};

use crate::at_rest::{AtRest, Row};
use crate::raft_store::{decode_u64, HARD_STATE, STATE};
use crate::segment_log::SegmentLog;
use crate::MetaError;

/// Format 1: raw entry bytes (before sealing at rest).
const ENTRIES_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries_v1");
/// Format 1: each entry sealed as an [`AtRest`] value of row ("entry", index).
const ENTRIES_V2: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries_v2");
/// The store's format (u64 LE); absent in format 1.
const LOG_FORMAT: &str = "log_format";
const SEGMENTS: u64 = 2;
const LOG_OFFSET: &str = "log_offset";
const LOG_GENERATION: &str = "log_generation";

/// Move a format-1 store's log into segment files under `log_dir` (nothing
/// to do for format 2; a new store just records format 2).
pub fn to_segments(db: &Database, log_dir: &Path, at_rest: &AtRest) -> Result<(), MetaError> {
    let (hs, rows, generation) = {
        let txn = db.begin_read()?;
        let state = txn.open_table(STATE)?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, MetaError> { Ok(state.get(k)?.map(|v| v.value().to_vec())) };
        if get(LOG_FORMAT)?.map(|v| decode_u64(&v)).transpose()? == Some(SEGMENTS) {
            return Ok(());
        }
        let offset = get(LOG_OFFSET)?.map(|v| decode_u64(v.get(..8).unwrap_or_default())).transpose()?.unwrap_or(0);
        let generation = get(LOG_GENERATION)?.map(|v| decode_u64(&v)).transpose()?.unwrap_or(0);
        let mut rows = Vec::new();
        for (table, sealed) in [(ENTRIES_V1, false), (ENTRIES_V2, true)] {
            let t = match txn.open_table(table) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            for row in t.range(offset + 1..)? {
                let (k, v) = row?;
                let (index, value) = (k.value(), v.value());
                let plain = if sealed { at_rest.open("entry", index, None, value)? } else { value.to_vec() };
                let term = Entry::parse_from_bytes(&plain)?.term;
                rows.push((index, term, at_rest.seal(Row::entry(index, term), &plain)));
            }
        }
        rows.sort_by_key(|(i, _, _)| *i);
        (get(HARD_STATE)?, rows, generation)
    };
    if log_dir.exists() {
        // A move cut short: redb still holds the log, so start again.
        std::fs::remove_dir_all(log_dir)?;
    }
    let (mut log, _) = SegmentLog::open(log_dir, generation)?;
    if let Some(hs) = &hs {
        log.push_hard_state(hs);
    }
    for (index, term, value) in &rows {
        log.push_entry(*index, *term, value);
    }
    log.flush(true)?;
    drop(log);
    let txn = db.begin_write()?;
    txn.delete_table(ENTRIES_V1)?;
    txn.delete_table(ENTRIES_V2)?;
    txn.open_table(STATE)?.insert(LOG_FORMAT, SEGMENTS.to_le_bytes().as_slice())?;
    txn.commit()?;
    if !rows.is_empty() {
        tracing::info!(entries = rows.len(), "raft log moved from redb to segment files");
    }
    Ok(())
}

/// The format-1 write path, kept to build old stores in tests.
#[cfg(test)]
pub mod format1 {
    use super::*;
    use protobuf::Message as PbMessage;
    use raft::prelude::{Entry, HardState};

    /// What format 1's `RaftStore::persist` did: one transaction with the
    /// entries (replacing any conflicting suffix) and the hard state.
    pub fn persist(db: &Database, at_rest: &AtRest, entries: &[Entry], hs: Option<&HardState>) {
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(STATE).unwrap();
            let mut table = txn.open_table(ENTRIES_V2).unwrap();
            if let Some(first) = entries.first() {
                table.retain_in(first.index.., |_, _| false).unwrap();
            }
            for e in entries {
                let value = at_rest.seal_format2("entry", e.index, &e.write_to_bytes().unwrap());
                table.insert(e.index, value.as_slice()).unwrap();
            }
            if let Some(hs) = hs {
                txn.open_table(STATE).unwrap().insert(HARD_STATE, hs.write_to_bytes().unwrap().as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    /// Format 1 before sealing: entries in the clear.
    pub fn persist_plain(db: &Database, entries: &[Entry]) {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(ENTRIES_V1).unwrap();
            for e in entries {
                table.insert(e.index, e.write_to_bytes().unwrap().as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
}
