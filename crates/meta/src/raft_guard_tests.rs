//! Forged and malformed Raft messages are refused before raft-rs sees them;
//! the messages a real leader and peers send pass.

use protobuf::Message as _;
use raft::prelude::{ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata};
use shardline_proto::v1 as pb;
use shardline_types::Layout;

use super::*;
use crate::node_io::encode_entry;
use crate::state_machine::StateMachine;

const ME: u64 = 2;
const LEADER: u64 = 1;

fn append(entries: Vec<Entry>) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = LEADER;
    m.to = ME;
    m.term = 3;
    m.log_term = 2;
    m.index = 10;
    m.commit = 12;
    m.set_entries(entries.into());
    m
}

fn entry(index: u64, term: u64, data: Vec<u8>) -> Entry {
    Entry { index, term, data: data.into(), ..Default::default() }
}

fn request() -> Vec<u8> {
    let req = pb::MetaRequest {
        client_id: 1,
        request_id: 1,
        caller: None,
        cache: false,
        body: Some(pb::meta_request::Body::Mkdir(pb::Mkdir { parent: 1, name: b"d".to_vec(), ..Default::default() })),
    };
    encode_entry(&req)
}

#[test]
fn real_appends_pass() {
    assert_eq!(check(&append(vec![]), LEADER, ME), Ok(()));
    let m = append(vec![entry(11, 2, request()), entry(12, 3, Vec::new()), entry(13, 3, request())]);
    assert_eq!(check(&m, LEADER, ME), Ok(()));
}

#[test]
fn an_entry_that_is_not_a_meta_request_is_refused() {
    // The attack from issue 12: an entry in no known format, committed.
    let m = append(vec![entry(11, 3, b"not a MetaRequest at all".to_vec())]);
    let why = check(&m, LEADER, ME).expect_err("accepted");
    assert!(why.contains("entry 11"), "{why}");
    let mut truncated = request();
    truncated.truncate(12);
    assert!(check(&append(vec![entry(11, 3, truncated)]), LEADER, ME).is_err());
    let mut cc = entry(11, 3, b"\xff\xff\xff".to_vec());
    cc.set_entry_type(EntryType::EntryConfChangeV2);
    assert!(check(&append(vec![cc]), LEADER, ME).is_err());
    let mut cc = entry(11, 3, ConfChangeV2::default().write_to_bytes().expect("encode"));
    cc.set_entry_type(EntryType::EntryConfChangeV2);
    cc.context = b"127.0.0.1:7000".to_vec().into();
    assert_eq!(check(&append(vec![cc.clone()]), LEADER, ME), Ok(()));
    cc.context = vec![0xff, 0xfe].into();
    assert!(check(&append(vec![cc.clone()]), LEADER, ME).is_err());
    // Format 2 contexts, as membership changes write them, pass; others not.
    cc.context = b"127.0.0.1:7000\nvoters=1,2,3".to_vec().into();
    assert_eq!(check(&append(vec![cc.clone()]), LEADER, ME), Ok(()));
    cc.context = b"127.0.0.1:7000\nvoters=1,x".to_vec().into();
    assert!(check(&append(vec![cc.clone()]), LEADER, ME).is_err());
    cc.context = b"127.0.0.1:7000\n\x07".to_vec().into();
    assert!(check(&append(vec![cc]), LEADER, ME).is_err());
}

/// Nemesis, long profile after the merge of the Raft guard: a wiped
/// metadata server was removed, and the removal's entry (whose context
/// carries the voters after it, on a second line) was refused by every
/// follower as "not an address": the cluster lost its quorum for good.
#[test]
fn a_membership_change_s_own_context_passes_the_guard() {
    use raft::eraftpb::{ConfChangeSingle, ConfChangeType};
    for (ty, addr) in [(ConfChangeType::RemoveNode, ""), (ConfChangeType::AddNode, "127.0.0.1:7003")] {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(ty);
        single.node_id = 3;
        let mut change = ConfChangeV2::default();
        change.set_changes(vec![single].into());
        let mut cc = entry(11, 3, change.write_to_bytes().expect("encode"));
        cc.set_entry_type(EntryType::EntryConfChangeV2);
        cc.context = crate::membership::encode_context(addr, &[1, 2, 3], &change).into();
        assert_eq!(check(&append(vec![cc]), LEADER, ME), Ok(()), "{ty:?}");
    }
}

#[test]
fn entries_out_of_place_are_refused() {
    for bad in [
        vec![entry(12, 3, request())],                          // a gap after the index
        vec![entry(11, 3, request()), entry(11, 3, request())], // repeated index
        vec![entry(11, 3, request()), entry(12, 2, request())], // term falls
        vec![entry(11, 4, request())],                          // term past the message's
        vec![entry(11, 1, request())],                          // term before the previous entry's
    ] {
        assert!(check(&append(bad.clone()), LEADER, ME).is_err(), "{bad:?}");
    }
    let mut overflow = append(vec![entry(0, 3, request())]);
    overflow.index = u64::MAX;
    assert!(check(&overflow, LEADER, ME).is_err());
}

#[test]
fn misaddressed_and_local_messages_are_refused() {
    let m = append(vec![]);
    assert!(check(&m, 3, ME).is_err(), "envelope from another peer");
    assert!(check(&m, LEADER, 3).is_err(), "addressed to another server");
    let mut from_me = m.clone();
    from_me.from = ME;
    assert!(check(&from_me, ME, ME).is_err());
    let mut from_zero = m.clone();
    from_zero.from = 0;
    assert!(check(&from_zero, 0, ME).is_err());
    for ty in [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgPropose,
        MessageType::MsgUnreachable,
        MessageType::MsgSnapStatus,
        MessageType::MsgCheckQuorum,
    ] {
        let mut local = m.clone();
        local.set_msg_type(ty);
        assert!(check(&local, LEADER, ME).is_err(), "{ty:?}");
    }
    let mut heartbeat = m.clone();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    assert_eq!(check(&heartbeat, LEADER, ME), Ok(()));
    heartbeat.set_entries(vec![entry(11, 3, request())].into());
    assert!(check(&heartbeat, LEADER, ME).is_err(), "entries outside an append");
}

#[test]
fn read_index_messages_carry_exactly_one_short_context() {
    for ty in [MessageType::MsgReadIndex, MessageType::MsgReadIndexResp] {
        let mut m = append(vec![]);
        m.set_msg_type(ty);
        // raft-rs indexes entries[0] of these without looking: a panic.
        assert!(check(&m, LEADER, ME).is_err(), "{ty:?} without a context");
        m.set_entries(vec![Entry { data: 7u64.to_le_bytes().to_vec().into(), ..Default::default() }].into());
        assert_eq!(check(&m, LEADER, ME), Ok(()), "{ty:?}");
        m.mut_entries().push(Entry::default());
        assert!(check(&m, LEADER, ME).is_err(), "{ty:?} with two");
        m.set_entries(vec![Entry { data: vec![0; 1000].into(), ..Default::default() }].into());
        assert!(check(&m, LEADER, ME).is_err(), "{ty:?} with a long context");
    }
}

fn snapshot_message(cs: ConfState, data: Vec<u8>) -> Message {
    let mut meta = SnapshotMetadata { index: 20, term: 3, ..Default::default() };
    meta.set_conf_state(cs);
    let mut snap = Snapshot::default();
    snap.set_metadata(meta);
    snap.data = data.into();
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = LEADER;
    m.to = ME;
    m.term = 3;
    m.set_snapshot(snap);
    m
}

fn conf(voters: &[u64], learners: &[u64]) -> ConfState {
    ConfState { voters: voters.to_vec(), learners: learners.to_vec(), ..Default::default() }
}

fn snapshot_data() -> Vec<u8> {
    crate::snapshot::encode(&StateMachine::new(Layout::default(), 8), &Default::default())
}

#[test]
fn snapshots_need_a_sane_conf_state_and_data_that_decodes() {
    assert_eq!(check(&snapshot_message(conf(&[1, 2, 3], &[]), snapshot_data()), LEADER, ME), Ok(()));
    for cs in [
        conf(&[], &[]),        // no voters
        conf(&[1, 3], &[]),    // not us
        conf(&[1, 2, 2], &[]), // a voter twice
        conf(&[1, 2], &[2]),   // a voter that is a learner
        conf(&[1, 2, 0], &[]), // id 0
    ] {
        let why = check(&snapshot_message(cs.clone(), snapshot_data()), LEADER, ME).expect_err("accepted");
        assert!(why.contains("conf state"), "{cs:?}: {why}");
    }
    let mut joint = conf(&[1, 2], &[]);
    joint.auto_leave = true;
    assert!(check(&snapshot_message(joint, snapshot_data()), LEADER, ME).is_err());
    let why = check(&snapshot_message(conf(&[1, 2, 3], &[]), b"\x01garbage".to_vec()), LEADER, ME)
        .expect_err("undecodable snapshot accepted");
    assert!(why.contains("snapshot data"), "{why}");
    let mut no_snapshot = snapshot_message(conf(&[1, 2, 3], &[]), snapshot_data());
    no_snapshot.snapshot = None.into();
    assert!(check(&no_snapshot, LEADER, ME).is_err());
}
