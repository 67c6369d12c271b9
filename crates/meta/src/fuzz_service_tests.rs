//! Fuzz targets for the metadata service's request handler: frames from any
//! certificate role, decoded, authorized, mapped to the certificate's
//! identity and dispatched — mutations applied to a real state machine,
//! queries answered from it, Raft batches checked, snapshot parts
//! reassembled — by the real [`MetaService`], with a stand-in for the Ready
//! loop. And the snapshot-part assembler alone, driven by sequences of
//! parts.

use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protobuf::Message as _;
use raft::prelude::{Entry, EntryType};
use shardline_crypto::CapKey;
use shardline_fuzz::{run, Target};
use shardline_proto::v1 as pb;
use shardline_rpc::{read_frame, write_frame, Frame, Handler, Principal, Role, UserMap};

use crate::caps::CapIssuer;
use crate::fuzz_seeds::{requests, seeded_state};
use crate::node::{Input, NodeStatus, Shared};
use crate::read_view::ReadView;
use crate::service::{MetaService, ServiceConfig};
use crate::snapshot_stream::{parts, Reassembly, MAX_TRANSFERS};

/// The certificates a request may arrive with, chosen by an input's first byte.
fn principals() -> Vec<Principal> {
    let p = |role, ids: Vec<u64>, user| Principal { role, ids, name: "fuzz".into(), user };
    let squashed = UserMap { ids: Some((1000, 1000)), root_squash: true, ..Default::default() };
    vec![
        p(Role::Client, vec![], UserMap::default()),
        p(Role::Client, vec![], squashed),
        p(Role::Admin, vec![], UserMap::default()),
        p(Role::Data, vec![1], UserMap::default()),
        p(Role::Meta, vec![2], UserMap::default()),
    ]
}

/// What the stand-in Ready loop found wrong (a panic applying, or a log
/// entry followers would refuse), reported to the fuzzing thread.
type Faults = Arc<Mutex<Vec<String>>>;

/// A Ready loop of one: every proposal applied to the state machine at
/// once, after checking that followers' `raft_guard` would accept the entry.
fn stand_in_loop(rx: Receiver<Input>, view: Arc<ReadView>, faults: Faults) {
    let mut now = 1_000_000i64;
    let fault = |what: String| faults.lock().unwrap_or_else(|e| e.into_inner()).push(what);
    while let Ok(input) = rx.recv() {
        now += 1000;
        match input {
            Input::Propose { req, reply, .. } => {
                let entry = crate::node_io::encode_entry(&req);
                let e = Entry { entry_type: EntryType::EntryNormal, data: entry.into(), ..Default::default() };
                if let Err(why) = crate::raft_guard::check_entry(&e) {
                    fault(format!("followers would refuse a proposed entry: {why}"));
                }
                let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| view.sm_mut().apply(&req, now)));
                match applied {
                    Ok(resp) => drop(reply.send(resp)),
                    Err(_) => fault(format!("applying {req:?} panicked")),
                }
            }
            Input::Read { req, reply } => {
                let _ = reply.send(view.sm().read(&req));
            }
            Input::Status { reply } => {
                let sm = view.sm();
                let _ = reply.send(NodeStatus {
                    id: 1,
                    role: "leader".into(),
                    term: 2,
                    leader_id: 1,
                    commit: 5,
                    applied: 5,
                    placement: sm.placement_map(),
                    open_holders: sm.open_holders(),
                });
            }
            Input::ConfChange { change, reply } => {
                let voters = [1, 2, 3];
                match crate::membership::conf_change(&change, &voters) {
                    Ok(cc) => {
                        let context = crate::membership::encode_context(&change.addr, &voters, &cc);
                        let data = cc.write_to_bytes().unwrap_or_default();
                        let e = Entry {
                            entry_type: EntryType::EntryConfChangeV2,
                            data: data.into(),
                            context: context.into(),
                            ..Default::default()
                        };
                        if let Err(why) = crate::raft_guard::check_entry(&e) {
                            fault(format!("followers would refuse a proposed membership change {change:?}: {why}"));
                        }
                        let _ = reply.send(crate::wire::ok(pb::meta_response::Body::Empty(pb::Empty {})));
                    }
                    Err(e) => drop(reply.send(crate::wire::error_response(&e))),
                }
            }
            _ => {}
        }
    }
}

struct Harness {
    service: MetaService,
    faults: Faults,
}

fn harness() -> Harness {
    let (sm, _) = seeded_state();
    let view = Arc::new(ReadView::new(sm));
    // Queries are answered in the handler, as under the leader's lease.
    view.allow_until(Some(Instant::now() + Duration::from_secs(24 * 3600)));
    let (tx, rx) = channel();
    let faults: Faults = Arc::default();
    let (v, f) = (view.clone(), faults.clone());
    std::thread::spawn(move || stand_in_loop(rx, v, f));
    let key = Arc::new(CapKey::from_bytes("fuzz", [7; 32]));
    let cfg = ServiceConfig {
        id: 1,
        down_after: Duration::from_secs(10),
        data_shards: 4,
        self_addr: "127.0.0.1:1".into(),
        client_lease: Duration::from_secs(60),
        cache_lease: Duration::from_secs(1),
        caps: CapIssuer::with_key(Some(key), Duration::from_secs(300)),
    };
    Harness { service: MetaService::new(cfg, tx, Arc::new(Shared::default()), view), faults }
}

fn encode_frame(rt: &tokio::runtime::Runtime, who: u8, header: Vec<u8>, payload: Vec<u8>) -> Vec<u8> {
    let mut out = vec![who];
    rt.block_on(write_frame(&mut out, &Frame::new(header, payload))).expect("encode a seed");
    out
}

/// Request frames: who sent them (first byte), then the frame.
fn service_seeds(rt: &tokio::runtime::Runtime) -> Vec<Vec<u8>> {
    let (_, inos) = seeded_state();
    let mut seeds = Vec::new();
    for (n, r) in requests(inos).into_iter().enumerate() {
        let header = prost::Message::encode_to_vec(&r);
        // Each request from the role that may send it, and from another.
        for who in [n as u8 % 5, 0, 2] {
            seeds.push(encode_frame(rt, who, header.clone(), vec![]));
        }
    }
    // A Raft batch whose snapshot travels in parts, from metadata server 2.
    let msg = crate::fuzz_raft_tests::snapshot_message(2, 1);
    for (part, bytes) in parts(9, Bytes::from(msg), 4096) {
        let batch = pb::RaftBatch { from: 2, messages: vec![], snapshot_part: Some(part) };
        let header = prost::Message::encode_to_vec(&crate::fuzz_seeds::req(0, 0, pb::meta_request::Body::Raft(batch)));
        seeds.push(encode_frame(rt, 4, header, bytes.to_vec()));
    }
    seeds
}

/// Any frame, from any role: an answer, never a panic, and nothing the
/// stand-in loop objects to (an entry followers would refuse, a panic in
/// the state machine).
#[test]
fn fuzz_meta_requests() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let who = principals();
    let seeds = service_seeds(&rt);
    let mut h = harness();
    let mut served = 0u64;
    let t = Target { name: "meta_requests", default_inputs: 3000 };
    run(t, seeds, |input| {
        // A fresh state now and then, so it does not grow without end.
        served += 1;
        if served.is_multiple_of(2000) {
            h = harness();
        }
        let Some((&first, mut rest)) = input.split_first() else { return false };
        let Ok(Some(frame)) = rt.block_on(read_frame(&mut rest)) else { return false };
        let peer = &who[first as usize % who.len()];
        let answer = rt.block_on(h.service.handle(peer, frame));
        let faults = std::mem::take(&mut *h.faults.lock().unwrap_or_else(|e| e.into_inner()));
        assert!(faults.is_empty(), "{faults:?}");
        let resp: pb::MetaResponse = answer.decode().expect("the answer decodes");
        resp.error.is_none()
    });
}

/// Sequences of snapshot parts from a few peers (6 bytes per part: peer,
/// transfer, offset, total, length, age): the assembler never panics, never
/// holds more transfers than allowed, and hands out only whole messages
/// exactly as sent.
#[test]
fn fuzz_snapshot_parts() {
    let message: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let good = parts(5, Bytes::from(message.clone()), 3000);
    // A seed: the good parts in order; its bytes say which part is which.
    let seed: Vec<u8> = (0..good.len() as u8).flat_map(|i| [1, 5, i, 0, 0, 0]).collect();
    let t = Target { name: "meta_snapshot_parts", default_inputs: 4000 };
    run(t, vec![seed], |input| {
        let r = Reassembly::default();
        let t0 = Instant::now();
        let mut clock = Duration::ZERO;
        let mut whole = false;
        for op in input.chunks(6) {
            let [peer, transfer, offset, total, len, age] = <[u8; 6]>::try_from(op).unwrap_or([0; 6]);
            clock += Duration::from_secs(u64::from(age));
            let (part, data) = match good.get(offset as usize) {
                // Mostly the real parts, under a peer and transfer of the input's choosing.
                Some((p, d)) if total == 0 => (pb::SnapshotPart { transfer: u64::from(transfer % 8), ..*p }, d.clone()),
                _ => {
                    let total = [0, 1, 100, 3000, 1 << 40, u64::MAX][total as usize % 6];
                    let offset = [0, 1, 3000, u64::MAX - 1][offset as usize % 4];
                    let p = pb::SnapshotPart { transfer: u64::from(transfer % 8), offset, total };
                    (p, Bytes::from(vec![7u8; len as usize * 16]))
                }
            };
            if let Ok(Some(msg)) = r.add_at(t0 + clock, u64::from(peer % 6), &part, &data) {
                assert_eq!(msg.len() as u64, part.total, "a whole message is as long as announced");
                if part.transfer == 5 && msg.len() == message.len() {
                    assert_eq!(msg, message, "reassembled bytes differ");
                }
                whole = true;
            }
            assert!(r.transfers() <= MAX_TRANSFERS, "{} transfers held", r.transfers());
        }
        whole
    });
}
