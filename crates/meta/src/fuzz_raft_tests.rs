//! Fuzz targets for Raft messages from the network: a `RaftBatch` checked
//! by `raft_guard` and, when it passes, stepped into a real raft-rs node (a
//! follower, or a leader) whose Ready output is handled the way `node.rs`
//! handles it. Nothing that passes the guard may panic raft-rs, commit an
//! entry the state machine cannot decode, or install a snapshot that does
//! not restore. And snapshot data alone: whatever decodes must give a state
//! machine that answers requests without panicking.

use std::collections::BTreeMap;

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType, Snapshot};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};
use shardline_fuzz::{run, Target};
use shardline_proto::v1 as pb;
use shardline_types::ROOT_INO;

use crate::fuzz_seeds::{req, requests, seeded_state};
use crate::node_io::{decode_entry, encode_entry};

const ME: u64 = 1;

fn msg(ty: MessageType, from: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(ty);
    m.from = from;
    m.to = ME;
    m.term = term;
    m
}

fn entry(index: u64, term: u64, data: Vec<u8>) -> Entry {
    Entry { index, term, data: data.into(), ..Default::default() }
}

fn request_entry(n: u64) -> Vec<u8> {
    let body = pb::meta_request::Body::Mkdir(pb::Mkdir {
        parent: ROOT_INO,
        name: format!("d{n}").into(),
        ..Default::default()
    });
    encode_entry(&req(3, n, body))
}

/// An encoded `MsgSnapshot` from `from` to `to` with a real state machine.
pub fn snapshot_message(from: u64, to: u64) -> Vec<u8> {
    let mut m = msg(MessageType::MsgSnapshot, from, 3);
    m.to = to;
    m.set_snapshot(snapshot(10, 2));
    m.write_to_bytes().unwrap_or_default()
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    let members: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{i}"))).collect();
    let mut s = Snapshot { data: crate::snapshot::encode(&seeded_state().0, &members).into(), ..Default::default() };
    let meta = s.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    s
}

/// Batches peers really send (as the follower or leader hears them).
fn raft_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Message> = Vec::new();
    let mut app = msg(MessageType::MsgAppend, 2, 2);
    (app.log_term, app.index, app.commit) = (1, 3, 5);
    app.set_entries(vec![entry(4, 2, request_entry(4)), entry(5, 2, Vec::new()), entry(6, 2, request_entry(6))].into());
    out.push(app);
    let mut cc = entry(4, 2, Vec::new());
    let mut change = ConfChangeV2::default();
    let mut single = raft::prelude::ConfChangeSingle::default();
    single.set_change_type(raft::prelude::ConfChangeType::AddNode);
    single.node_id = 4;
    change.set_changes(vec![single].into());
    cc.data = change.write_to_bytes().unwrap_or_default().into();
    cc.context = crate::membership::encode_context("127.0.0.1:4", &[1, 2, 3], &change).into();
    cc.set_entry_type(EntryType::EntryConfChangeV2);
    let mut app = msg(MessageType::MsgAppend, 2, 2);
    (app.log_term, app.index, app.commit) = (1, 3, 4);
    app.set_entries(vec![cc].into());
    out.push(app);
    let mut v1 = entry(4, 2, ConfChange::default().write_to_bytes().unwrap_or_default());
    v1.set_entry_type(EntryType::EntryConfChange);
    let mut app = msg(MessageType::MsgAppend, 3, 2);
    (app.log_term, app.index, app.commit) = (1, 3, 4);
    app.set_entries(vec![v1].into());
    out.push(app);
    let mut hb = msg(MessageType::MsgHeartbeat, 2, 2);
    hb.commit = 3;
    out.push(hb);
    for ty in [MessageType::MsgRequestVote, MessageType::MsgRequestPreVote] {
        let mut v = msg(ty, 3, 3);
        (v.log_term, v.index) = (1, 3);
        out.push(v);
    }
    let mut resp = msg(MessageType::MsgAppendResponse, 2, 2);
    resp.index = 3;
    out.push(resp);
    out.push(msg(MessageType::MsgHeartbeatResponse, 3, 2));
    for ty in [MessageType::MsgReadIndex, MessageType::MsgReadIndexResp] {
        let mut r = msg(ty, 2, 2);
        r.set_entries(vec![entry(0, 0, 42u64.to_le_bytes().to_vec())].into());
        out.push(r);
    }
    out.push(msg(MessageType::MsgTimeoutNow, 2, 3));
    out.push(msg(MessageType::MsgTransferLeader, 2, 2));
    let snap: Message = Message::parse_from_bytes(&snapshot_message(2, ME)).unwrap_or_default();
    out.push(snap);
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for (n, m) in out.iter().enumerate() {
        for leader in [0u8, 1] {
            let batch = pb::RaftBatch {
                from: m.from,
                messages: vec![m.write_to_bytes().unwrap_or_default()],
                snapshot_part: None,
            };
            let mut seed = vec![leader];
            seed.extend(prost::Message::encode_to_vec(&batch));
            seeds.push(seed);
            let _ = n;
        }
    }
    seeds
}

/// A raft-rs node `ME` of {1, 2, 3} holding entries 1-3 of term 1, as
/// configured in `node.rs`.
fn node() -> RawNode<MemStorage> {
    let store = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    let entries: Vec<Entry> = (1..=3).map(|i| entry(i, 1, request_entry(i))).collect();
    store.wl().append(&entries).unwrap_or_else(|e| panic!("seed log: {e}"));
    let mut hs = raft::prelude::HardState::default();
    (hs.term, hs.commit) = (1, 1);
    store.wl().set_hardstate(hs);
    let cfg = raft::Config {
        id: ME,
        election_tick: 10,
        heartbeat_tick: 2,
        max_size_per_msg: 4 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    RawNode::new(&cfg, store, &logger).unwrap_or_else(|e| panic!("raft node: {e}"))
}

/// Handle every Ready the way `node.rs` does; returns the messages sent.
fn drain(raw: &mut RawNode<MemStorage>) -> Vec<Message> {
    let mut sent = Vec::new();
    for _ in 0..16 {
        if !raw.has_ready() {
            break;
        }
        let mut rd = raw.ready();
        sent.extend(rd.take_messages());
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            crate::snapshot::decode(&snap.data)
                .unwrap_or_else(|e| panic!("an installed snapshot does not restore: {e}"));
            raw.mut_store().wl().apply_snapshot(snap).unwrap_or_else(|e| panic!("apply snapshot: {e}"));
        }
        apply(raw, rd.take_committed_entries());
        raw.mut_store().wl().append(rd.entries()).unwrap_or_else(|e| panic!("append: {e}"));
        if let Some(hs) = rd.hs() {
            raw.mut_store().wl().set_hardstate(hs.clone());
        }
        sent.extend(rd.take_persisted_messages());
        let mut light = raw.advance(rd);
        sent.extend(light.take_messages());
        apply(raw, light.take_committed_entries());
        raw.advance_apply();
    }
    sent
}

/// Committed entries, applied as `node.rs` applies them.
fn apply(raw: &mut RawNode<MemStorage>, entries: Vec<Entry>) {
    for e in entries {
        match e.get_entry_type() {
            EntryType::EntryNormal if e.data.is_empty() => {}
            EntryType::EntryNormal => {
                decode_entry(&e.data)
                    .unwrap_or_else(|err| panic!("committed entry {} does not decode: {err}", e.index));
            }
            EntryType::EntryConfChange => {
                let cc = ConfChange::parse_from_bytes(&e.data).unwrap_or_else(|err| panic!("conf change: {err}"));
                let _ = raw.apply_conf_change(&cc);
            }
            EntryType::EntryConfChangeV2 => {
                let cc = ConfChangeV2::parse_from_bytes(&e.data).unwrap_or_else(|err| panic!("conf change: {err}"));
                let _ = raw.apply_conf_change(&cc);
            }
        }
    }
}

/// Make `raw` the leader of term 2: votes granted by 2 and 3.
fn elect(raw: &mut RawNode<MemStorage>) {
    raw.campaign().unwrap_or_else(|e| panic!("campaign: {e}"));
    for _ in 0..4 {
        for m in drain(raw) {
            let answer = match m.get_msg_type() {
                MessageType::MsgRequestPreVote => MessageType::MsgRequestPreVoteResponse,
                MessageType::MsgRequestVote => MessageType::MsgRequestVoteResponse,
                _ => continue,
            };
            let _ = raw.step(msg(answer, m.to, m.term));
        }
        if raw.raft.state == StateRole::Leader {
            drain(raw);
            return;
        }
    }
    panic!("node 1 did not become the leader");
}

/// The first byte: 0 a follower hears it, 1 the leader; the rest a `RaftBatch`.
#[test]
fn fuzz_raft_messages() {
    let t = Target { name: "meta_raft_messages", default_inputs: 2000 };
    run(t, raft_seeds(), raft_case);
}

/// One input of [`fuzz_raft_messages`].
fn raft_case(input: &[u8]) -> bool {
    let Some((&which, rest)) = input.split_first() else { return false };
    let Ok(batch) = <pb::RaftBatch as prost::Message>::decode(rest) else { return false };
    let Ok(msgs) = crate::raft_guard::parse_checked(&batch, ME) else { return false };
    let mut raw = node();
    if which % 2 == 1 {
        elect(&mut raw);
    }
    for mut m in msgs {
        let last = raw.raft.raft_log.last_index();
        if crate::raft_guard::fit_to_log(&mut m, last) {
            let _ = raw.step(m);
        }
        drain(&mut raw);
    }
    true
}

/// Found by `fuzz_raft_messages`: a `MsgRequestVote` with term 0 passed the
/// guard, and raft-rs, answering it, hit `fatal!("term should be set when
/// sending MsgRequestVoteResponse")` — a panic that stopped the server.
#[test]
fn fuzz_vote_request_without_a_term_is_refused_before_raft_rs() {
    let input = shardline_fuzz::driver::unhex("000803120c080510011803280328013003");
    let batch = <pb::RaftBatch as prost::Message>::decode(&input[1..]).expect("a batch");
    let why = crate::raft_guard::parse_checked(&batch, ME).expect_err("refused");
    assert!(why.contains("without a term"), "{why}");
    assert!(!raft_case(&input));
}

/// Snapshot data from a peer: what decodes restores a state machine that
/// answers every kind of request (and re-encodes) without panicking.
#[test]
fn fuzz_snapshot_data() {
    let (sm, inos) = seeded_state();
    let members: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{i}"))).collect();
    let seeds = vec![crate::snapshot::encode(&sm, &members)];
    let reqs = requests(inos);
    let t = Target { name: "meta_snapshot_data", default_inputs: 1500 };
    run(t, seeds, |input| {
        let Ok((mut sm, members)) = crate::snapshot::decode(input) else { return false };
        let again = crate::snapshot::encode(&sm, &members);
        crate::snapshot::decode(&again).unwrap_or_else(|e| panic!("a decoded snapshot re-encodes unreadably: {e}"));
        for (n, r) in reqs.iter().enumerate() {
            if crate::state_machine::is_mutation(
                r.body.as_ref().unwrap_or(&pb::meta_request::Body::Statfs(pb::Statfs {})),
            ) {
                sm.apply(r, 10_000 + n as i64);
            } else {
                sm.read(r);
            }
        }
        true
    });
}
