//! The Raft store over its log writer: restart, conflicts, snapshots,
//! compaction, and the move from the format-1 (redb) log.

use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use raft::prelude::{ConfState, Entry, HardState, Message, Snapshot, SnapshotMetadata};
use raft::Storage;
use redb::{Database, TableDefinition, TableHandle};
use shardline_crypto::Kek;

use super::*;
use crate::log_migrate::format1;
use crate::log_writer::Batch;
use crate::node::Input;
use crate::segment_log::{Record, SegmentLog};
use crate::transport::Outbox;

#[allow(clippy::field_reassign_with_default)]
fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    let mut e = Entry::default();
    e.index = index;
    e.term = term;
    e.data = data.to_vec().into();
    e
}

#[allow(clippy::field_reassign_with_default)]
fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    let mut hs = HardState::default();
    hs.term = term;
    hs.vote = vote;
    hs.commit = commit;
    hs
}

fn batch(number: u64, entries: Vec<Entry>, hs: Option<HardState>, messages: Vec<Message>) -> Batch {
    Batch { number, entries, hard_state: hs, sync: true, messages, queued: Instant::now() }
}

/// A store with its writer running; the receiver gets the writer's reports.
fn open(dir: &Path, voters: &[u64], at_rest: AtRest, outbox: Outbox) -> (RaftStore, Receiver<Input>) {
    let mut s = RaftStore::open(dir, voters, at_rest).unwrap();
    let (tx, rx) = channel();
    s.start_writer(outbox, tx, Arc::default()).unwrap();
    (s, rx)
}

#[test]
fn survives_reopen_and_truncates_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, _rx) = open(dir.path(), &[1, 2, 3], AtRest::plain(), Outbox::default());
        let first = vec![entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")];
        s.append(batch(1, first, Some(hard_state(2, 1, 2)), vec![])).unwrap();
        // A new leader overwrites index 3 onwards.
        s.append(batch(2, vec![entry(3, 2, b"C")], None, vec![])).unwrap();
        s.barrier().unwrap();
    }
    let (s, _rx) = open(dir.path(), &[9], AtRest::plain(), Outbox::default());
    let mem = s.cache();
    assert_eq!(mem.last_index().unwrap(), 3);
    assert_eq!(mem.term(3).unwrap(), 2);
    assert_eq!(mem.entries(3, 4, None, raft::GetEntriesContext::empty(false)).unwrap()[0].data, b"C".to_vec());
    let st = mem.initial_state().unwrap();
    assert_eq!((st.hard_state.term, st.hard_state.vote, st.hard_state.commit), (2, 1, 2));
    assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
}

#[test]
#[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
fn held_messages_leave_after_their_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::default();
    let (tx, peer) = tokio::sync::mpsc::unbounded_channel();
    outbox.set_for_test(2, tx);
    let (s, reports) = open(dir.path(), &[1], AtRest::plain(), outbox);
    let mut ack = Message::default();
    ack.to = 2;
    ack.index = 7;
    s.append(batch(5, vec![entry(1, 1, b"x")], None, vec![ack])).unwrap();
    let mut peer = peer;
    let sent = peer.blocking_recv().unwrap();
    assert_eq!(sent.index, 7);
    // The entry is in the file by the time the acknowledgement left.
    let (_, on_disk) = SegmentLog::open(&dir.path().join(LOG_DIR), 0).unwrap();
    assert!(on_disk.iter().any(|r| matches!(r, Record::Entry { index: 1, .. })));
    match reports.recv_timeout(Duration::from_secs(10)).unwrap() {
        Input::Persisted(n) => assert_eq!(n, 5),
        _ => panic!("expected a persisted report"),
    }
}

#[test]
#[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
fn a_snapshot_compacts_the_log_and_a_restart_loads_only_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (s, _rx) = open(dir.path(), &[1], AtRest::plain(), Outbox::default());
        let all: Vec<Entry> = (1..=100).map(|i| entry(i, 1, b"x")).collect();
        s.append(batch(1, all, Some(hard_state(1, 1, 100)), vec![])).unwrap();
        let mut meta = SnapshotMetadata::default();
        meta.index = 90;
        meta.term = 1;
        s.save_snapshot(meta, b"state".to_vec(), 60).unwrap();
        assert_eq!(s.cache().first_index().unwrap(), 61, "the log in memory starts after the offset");
        s.append(batch(2, vec![entry(101, 1, b"y")], None, vec![])).unwrap();
        s.barrier().unwrap();
    }
    let (s, _rx) = open(dir.path(), &[1], AtRest::plain(), Outbox::default());
    assert_eq!(s.cache().first_index().unwrap(), 61);
    assert_eq!(s.cache().last_index().unwrap(), 101);
    assert_eq!(s.snapshot().get_metadata().index, 90);
    assert_eq!(s.snapshot().data, b"state".to_vec());
}

#[test]
#[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
fn a_snapshot_from_the_leader_replaces_the_log_for_good() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut s, _rx) = open(dir.path(), &[1, 2, 3], AtRest::plain(), Outbox::default());
        // Entries 1-5 of an old term, never committed here.
        let old: Vec<Entry> = (1..=5).map(|i| entry(i, 1, b"old")).collect();
        s.append(batch(1, old, Some(hard_state(1, 2, 0)), vec![])).unwrap();
        s.barrier().unwrap();
        let mut snap = Snapshot::default();
        snap.data = b"leader state".to_vec().into();
        let meta = snap.mut_metadata();
        meta.index = 3;
        meta.term = 2;
        meta.set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        s.apply_snapshot(&snap).unwrap();
        s.append(batch(2, vec![entry(4, 2, b"new")], Some(hard_state(2, 0, 3)), vec![])).unwrap();
        s.barrier().unwrap();
    }
    let (s, _rx) = open(dir.path(), &[1, 2, 3], AtRest::plain(), Outbox::default());
    let mem = s.cache();
    assert_eq!((mem.first_index().unwrap(), mem.last_index().unwrap()), (4, 4), "old entries 4 and 5 are gone");
    assert_eq!(mem.term(4).unwrap(), 2);
    assert_eq!(mem.initial_state().unwrap().hard_state.commit, 3);
    assert_eq!(s.snapshot().data, b"leader state".to_vec());
}

#[test]
fn a_format1_store_is_moved_to_segments_once() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("meta.key");
    Kek::load_or_create(&key_file).unwrap();
    let sealed = || AtRest::sealed(Kek::load(&key_file).unwrap());
    {
        // Written by the format-1 code path: the log in redb.
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        let first: Vec<Entry> = (1..=4).map(|i| entry(i, 1, format!("name-{i}").as_bytes())).collect();
        format1::persist(&db, &sealed(), &first, Some(&hard_state(1, 1, 3)));
        format1::persist(&db, &sealed(), &[entry(4, 2, b"name-4b"), entry(5, 2, b"name-5")], None);
    }
    let check = |s: &RaftStore| {
        let mem = s.cache();
        assert_eq!(mem.last_index().unwrap(), 5);
        assert_eq!(mem.term(4).unwrap(), 2, "the conflicting suffix was replaced in format 1");
        let got = mem.entries(1, 6, None, raft::GetEntriesContext::empty(false)).unwrap();
        assert_eq!(got[4].data, b"name-5".to_vec());
        assert_eq!(mem.initial_state().unwrap().hard_state.commit, 3);
    };
    {
        let (s, _rx) = open(dir.path(), &[1], sealed(), Outbox::default());
        check(&s);
        s.append(batch(1, vec![entry(6, 2, b"name-6")], None, vec![])).unwrap();
        s.barrier().unwrap();
    }
    // The old tables are gone; the segment log alone holds the log now.
    {
        let db = Database::open(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        let tables: Vec<String> = txn.list_tables().unwrap().map(|t| t.name().to_string()).collect();
        assert!(!tables.iter().any(|t| t.starts_with("raft_entries")), "{tables:?}");
    }
    let (s, _rx) = open(dir.path(), &[1], sealed(), Outbox::default());
    assert_eq!(s.cache().last_index().unwrap(), 6);
    // Sealed as before: no plaintext in the segments.
    for e in std::fs::read_dir(dir.path().join(LOG_DIR)).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(!bytes.windows(5).any(|w| w == b"name-"), "plaintext entry on disk");
    }
}

#[test]
fn a_move_cut_short_is_redone_from_the_format1_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        format1::persist_plain(&db, &[entry(1, 1, b"a"), entry(2, 1, b"b")]);
    }
    // A crash after writing part of the new log, before redb switched.
    let log_dir = dir.path().join(LOG_DIR);
    {
        let (mut log, _) = SegmentLog::open(&log_dir, 0).unwrap();
        log.push_entry(1, 1, b"half");
        log.flush(true).unwrap();
    }
    let (s, _rx) = open(dir.path(), &[1], AtRest::plain(), Outbox::default());
    let got = s.cache().entries(1, 3, None, raft::GetEntriesContext::empty(false)).unwrap();
    assert_eq!(got.iter().map(|e| e.data.to_vec()).collect::<Vec<_>>(), vec![b"a".to_vec(), b"b".to_vec()]);
    let v1: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries_v1");
    drop(s);
    let db = Database::open(dir.path().join(DB_FILE)).unwrap();
    assert!(db.begin_read().unwrap().open_table(v1).is_err(), "the format-1 table is dropped");
}

#[test]
#[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
fn a_snapshot_job_stores_off_the_loop_and_never_overwrites_a_newer_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (s, reports) = open(dir.path(), &[1], AtRest::plain(), Outbox::default());
    let all: Vec<Entry> = (1..=50).map(|i| entry(i, 1, b"x")).collect();
    s.append(batch(1, all, Some(hard_state(1, 1, 50)), vec![])).unwrap();
    let meta_at = |index: u64| {
        let mut meta = SnapshotMetadata::default();
        meta.index = index;
        meta.term = 1;
        meta
    };
    let sm = crate::state_machine::StateMachine::new(shardline_types::Layout::default(), 4);
    let plan = s.plan_snapshot(meta_at(40), 30).unwrap();
    crate::snapshot_job::spawn(s.saver(), sm, Default::default(), plan, s.notifier().unwrap()).unwrap();
    let saved = loop {
        match reports.recv_timeout(Duration::from_secs(30)).unwrap() {
            Input::SnapshotSaved(r) => break r.unwrap().expect("stored"),
            _ => continue,
        }
    };
    assert!(s.finish_snapshot(saved).unwrap());
    assert_eq!(s.snapshot().get_metadata().index, 40);
    assert_eq!(s.cache().first_index().unwrap(), 31);
    // A job planned before a newer snapshot was stored stores nothing.
    let stale = s.plan_snapshot(meta_at(35), 30).unwrap();
    assert!(s.saver().save(stale, b"older".to_vec()).unwrap().is_none());
    drop(s);
    let (s, _rx) = open(dir.path(), &[1], AtRest::plain(), Outbox::default());
    assert_eq!(s.snapshot().get_metadata().index, 40);
    assert!(crate::snapshot::decode(&s.snapshot().data).is_ok());
}

/// Replace the segment log of the (closed) store in `dir` with `records`.
fn rewrite_log(dir: &Path, records: &[Record]) {
    let log_dir = dir.join(LOG_DIR);
    std::fs::remove_dir_all(&log_dir).unwrap();
    let (mut log, _) = SegmentLog::open(&log_dir, 0).unwrap();
    for r in records {
        match r {
            Record::Entry { index, term, stored } => log.push_entry(*index, term.unwrap_or(0), stored),
            Record::HardState(b) => log.push_hard_state(b),
        }
    }
    log.flush(true).unwrap();
}

fn open_err(dir: &Path, at_rest: AtRest) -> String {
    match RaftStore::open(dir, &[1], at_rest) {
        Ok(_) => panic!("a tampered log opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_log_entry_moved_to_another_term_or_index_or_sealed_under_another_key_id_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("meta.key");
    shardline_crypto::Keyring::load_or_create_v2(&key_file, "meta").unwrap();
    let sealed = || AtRest::load(Some(&key_file)).unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    {
        let (s, _rx) = open(&store, &[1], sealed(), Outbox::default());
        let entries = vec![entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 2, b"c")];
        s.append(batch(1, entries, Some(hard_state(2, 1, 3)), vec![])).unwrap();
        s.barrier().unwrap();
    }
    let (_, records) = SegmentLog::open(&store.join(LOG_DIR), 0).unwrap();
    let value = |i: u64| {
        records
            .iter()
            .find_map(|r| match r {
                Record::Entry { index, stored, .. } if *index == i => Some(stored.clone()),
                _ => None,
            })
            .unwrap()
    };
    let rec = |index, term, stored| Record::Entry { index, term: Some(term), stored };
    // Untouched, it opens (and the terms were stored beside the entries).
    assert!(records.iter().any(|r| matches!(r, Record::Entry { index: 3, term: Some(2), .. })), "{records:?}");
    rewrite_log(&store, &[rec(1, 1, value(1)), rec(2, 1, value(2)), rec(3, 2, value(3))]);
    assert_eq!(RaftStore::open(&store, &[1], sealed()).unwrap().cache().last_index().unwrap(), 3);

    // Entry 2 relabelled as of term 2 (a later record would supersede the
    // real one): refused.
    rewrite_log(&store, &[rec(1, 1, value(1)), rec(2, 2, value(2))]);
    let e = open_err(&store, sealed());
    assert!(e.contains("entry 2 (term 2)") && e.contains("another index or term"), "{e}");
    // Entry 1's value placed at index 2: refused.
    rewrite_log(&store, &[rec(1, 1, value(1)), rec(2, 1, value(1))]);
    let e = open_err(&store, sealed());
    assert!(e.contains("entry 2 (term 1)") && e.contains("another index or term"), "{e}");
    // A server holding another key id.
    rewrite_log(&store, &[rec(1, 1, value(1))]);
    let other = AtRest::with_keyring(shardline_crypto::Keyring::generate("meta-other"));
    let e = open_err(&store, other);
    assert!(e.contains("sealed under key id `meta-") && e.contains("holds key id `meta-other`"), "{e}");
}

/// A value as format 2 sealed it: AAD = kind || index (BE), no key id, no term.
fn format2_value(key: &Kek, what: &str, index: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut aad = what.as_bytes().to_vec();
    aad.extend_from_slice(&index.to_be_bytes());
    let mut out = vec![2u8];
    out.extend_from_slice(&shardline_crypto::seal_blob(key, &aad, plaintext));
    out
}

#[test]
#[allow(clippy::field_reassign_with_default)] // protobuf 2 structs carry private fields
fn a_log_and_snapshot_written_in_the_old_format_replay_and_new_writes_bind_their_term() {
    use crate::segment::{encode_record, Header, KIND_ENTRY, KIND_HARD_STATE, VERSION_1};
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("meta.key");
    Kek::load_or_create(&key_file).unwrap(); // a v1 key file, as before key ids were bound
    let key = Kek::load(&key_file).unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    // The store as the previous format left it: a snapshot at (2, 1) sealed
    // in format 2, then entries 3 and 4 in a version-1 segment.
    {
        let db = Database::create(store.join(DB_FILE)).unwrap();
        let mut meta = SnapshotMetadata::default();
        meta.index = 2;
        meta.term = 1;
        meta.set_conf_state(ConfState::from((vec![1], vec![])));
        let txn = db.begin_write().unwrap();
        {
            let mut state = txn.open_table(STATE).unwrap();
            state.insert("log_format", 2u64.to_le_bytes().as_slice()).unwrap();
            state.insert(SNAPSHOT_META, meta.write_to_bytes().unwrap().as_slice()).unwrap();
            state.insert(SNAPSHOT_DATA, format2_value(&key, "snapshot", 2, b"old snapshot").as_slice()).unwrap();
            state.insert(LOG_OFFSET, encode_offset((2, 1)).as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let log_dir = store.join(LOG_DIR);
        std::fs::create_dir(&log_dir).unwrap();
        let mut seg = Header { generation: 0, seq: 1, version: VERSION_1 }.encode().to_vec();
        encode_record(&mut seg, KIND_HARD_STATE, &[&hard_state(2, 1, 4).write_to_bytes().unwrap()]);
        for e in [entry(3, 1, b"name-3"), entry(4, 2, b"name-4")] {
            let value = format2_value(&key, "entry", e.index, &e.write_to_bytes().unwrap());
            encode_record(&mut seg, KIND_ENTRY, &[&e.index.to_le_bytes(), &value]);
        }
        std::fs::write(log_dir.join(format!("{:020}.seg", 1)), seg).unwrap();
    }
    let sealed = || AtRest::load(Some(&key_file)).unwrap();
    {
        let (s, _rx) = open(&store, &[1], sealed(), Outbox::default());
        assert_eq!(s.snapshot().data, b"old snapshot".to_vec());
        let mem = s.cache();
        assert_eq!((mem.first_index().unwrap(), mem.last_index().unwrap()), (3, 4));
        assert_eq!((mem.term(3).unwrap(), mem.term(4).unwrap()), (1, 2));
        assert_eq!(mem.initial_state().unwrap().hard_state.commit, 4);
        s.append(batch(1, vec![entry(5, 2, b"name-5")], Some(hard_state(2, 1, 5)), vec![])).unwrap();
        s.barrier().unwrap();
    }
    // Old records stay as they were; the new one is in a version-2
    // segment with its term, sealed in format 3.
    let (log, records) = SegmentLog::open(&store.join(LOG_DIR), 0).unwrap();
    let entries: Vec<(u64, Option<u64>, u8)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Entry { index, term, stored } => Some((*index, *term, stored[0])),
            Record::HardState(_) => None,
        })
        .collect();
    assert_eq!(entries, vec![(3, None, 2), (4, None, 2), (5, Some(2), 3)]);
    assert_eq!(log.segment_paths().len(), 2);
    drop(log);
    {
        let (s, _rx) = open(&store, &[1], sealed(), Outbox::default());
        let got = s.cache().entries(3, 6, None, raft::GetEntriesContext::empty(false)).unwrap();
        assert_eq!(got.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), vec![(3, 1), (4, 2), (5, 2)]);
        // A new snapshot is sealed in format 3, bound to its term.
        let mut meta = SnapshotMetadata::default();
        meta.index = 5;
        meta.term = 2;
        meta.set_conf_state(ConfState::from((vec![1], vec![])));
        s.save_snapshot(meta, b"new snapshot".to_vec(), 4).unwrap();
    }
    let (s, _rx) = open(&store, &[1], sealed(), Outbox::default());
    assert_eq!(s.snapshot().data, b"new snapshot".to_vec());
    let db = s.db.clone();
    drop(s);
    let stored =
        db.begin_read().unwrap().open_table(STATE).unwrap().get(SNAPSHOT_DATA).unwrap().unwrap().value().to_vec();
    assert_eq!(stored[0], 3, "snapshot written in format 3");
    assert!(!stored.windows(8).any(|w| w == b"snapshot"), "sealed");
}
