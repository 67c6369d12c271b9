//! Huge directories and snapshot isolation: a directory of many entries
//! lists completely and in order across pages, looks up and survives a
//! snapshot round trip; a copy of the state machine taken for a snapshot
//! is not touched by the writes applied after it. One ignored test builds
//! a 1,000,000-entry directory and prints what the Ready loop's copy of it
//! costs (`cargo test -p shardline-meta bigdir_clone_cost -- --ignored --nocapture`).

use std::collections::BTreeMap;
use std::time::Instant;

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_types::{Layout, ROOT_INO};

use crate::namespace::tests::attrs;
use crate::namespace::MAX_READDIR_PAGE;
use crate::snapshot;
use crate::snapshot::tests::create;
use crate::state_machine::StateMachine;

fn name(i: usize) -> Vec<u8> {
    // Not in creation order bytewise: "f10" sorts before "f2".
    format!("f{i}").into_bytes()
}

/// A state machine whose directory `d` (returned) holds `n` files.
fn big_dir(n: usize) -> (StateMachine, u64) {
    let mut sm = StateMachine::new(Layout::default(), 8);
    let d = sm.ns.mkdir(ROOT_INO, b"d", attrs(), 1).expect("mkdir").ino;
    for i in 0..n {
        sm.ns.create(d, &name(i), attrs(), true, 2).expect("create");
    }
    (sm, d)
}

/// Every entry of `dir`, page by page, checking each page's cookie.
fn list_all(sm: &StateMachine, dir: u64, page: usize) -> Vec<(Vec<u8>, u64)> {
    let mut out: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut after = Vec::new();
    loop {
        let (entries, more) = sm.ns.readdir(dir, &after, page).expect("readdir");
        assert!(entries.len() <= page.min(MAX_READDIR_PAGE));
        if let Some((last, _, _)) = entries.last() {
            after = last.clone();
        }
        out.extend(entries.into_iter().map(|(n, i, _)| (n, i)));
        if !more {
            return out;
        }
    }
}

#[test]
fn many_entries_list_in_order_look_up_and_survive_a_snapshot() {
    const N: usize = 200_000;
    let started = Instant::now();
    let (sm, d) = big_dir(N);
    let listed = list_all(&sm, d, 4096);
    assert_eq!(listed.len(), N, "every entry listed once");
    assert!(listed.windows(2).all(|w| w[0].0 < w[1].0), "strictly in name order, so no duplicates");
    let mut expected: Vec<Vec<u8>> = (0..N).map(name).collect();
    expected.sort();
    assert!(listed.iter().map(|(n, _)| n).eq(expected.iter()), "exactly the names created");
    for i in (0..N).step_by(997) {
        let found = sm.ns.lookup(d, &name(i)).expect("lookup");
        assert!(listed.binary_search_by(|(n, _)| n.as_slice().cmp(&name(i))).is_ok_and(|p| listed[p].1 == found.ino));
    }
    assert!(sm.ns.lookup(d, b"f200000").is_err());

    let members = BTreeMap::from([(1, "127.0.0.151:1".to_string())]);
    let bytes = snapshot::encode(&sm, &members);
    let (restored, m) = snapshot::decode(&bytes).expect("decode");
    assert_eq!(m, members);
    assert_eq!(list_all(&restored, d, MAX_READDIR_PAGE), listed, "same listing after the round trip");
    assert_eq!(
        restored.ns.lookup(d, &name(N - 1)).expect("lookup").ino,
        sm.ns.lookup(d, &name(N - 1)).expect("lookup").ino
    );
    assert_eq!(snapshot::encode(&restored, &members), bytes, "re-encodes byte for byte");
    println!("{N} entries: built, listed, looked up and round-tripped in {:?}", started.elapsed());
}

fn req(id: u64, body: Body) -> pb::MetaRequest {
    crate::snapshot::tests::req(5, id, body)
}

fn attr_ino(r: &pb::MetaResponse) -> u64 {
    match &r.body {
        Some(pb::meta_response::Body::Attr(a)) => a.ino,
        other => panic!("expected attributes, got {other:?}"),
    }
}

#[test]
fn a_snapshot_copy_sees_exactly_the_state_at_its_index() {
    let (mut sm, d) = big_dir(5_000);
    let mut id = 0;
    let mut apply = |sm: &mut StateMachine, body: Body| {
        id += 1;
        let r = sm.apply(&req(id, body), 1_000 + id as i64);
        assert!(r.error.is_none(), "{r:?}");
        r
    };
    let f = attr_ino(&apply(&mut sm, create(d, "chunked")));
    let commit = |version: u64| {
        Body::CommitChunk(pb::CommitChunk {
            manifest: None,
            ino: f,
            chunk: Some(pb::Chunk { index: 0, version, sealed_len: 100, pg: 3, format: 0, cap: None, data_shards: 0 }),
            new_size: 60,
            epoch: 0,
        })
    };
    apply(&mut sm, commit(1));
    let members = BTreeMap::new();
    let at_index = snapshot::encode(&sm, &members);

    // What the Ready loop does: copy, hand the copy to a job, apply on.
    let copy = sm.clone();
    apply(&mut sm, create(d, "later"));
    apply(&mut sm, commit(2));
    apply(&mut sm, Body::Unlink(pb::Unlink { parent: d, name: "f17".into() }));
    apply(
        &mut sm,
        Body::Rename(pb::Rename { parent: d, name: "f18".into(), new_parent: ROOT_INO, new_name: "moved".into() }),
    );
    apply(&mut sm, Body::Mkdir(pb::Mkdir { parent: d, name: "sub".into(), mode: 0o755, ..Default::default() }));
    apply(&mut sm, Body::Rmdir(pb::Rmdir { parent: d, name: "sub".into() }));
    for i in 0..300 {
        apply(&mut sm, create(ROOT_INO, &format!("r{i}")));
    }

    assert_eq!(snapshot::encode(&copy, &members), at_index, "the copy holds the state at its index, byte for byte");
    assert!(copy.ns.lookup(d, b"later").is_err() && copy.ns.lookup(d, b"f17").is_ok());
    assert!(copy.ns.lookup(d, b"f18").is_ok() && copy.ns.lookup(ROOT_INO, b"moved").is_err());
    assert!(copy.ns.is_live(f, 0, 1) && !copy.ns.is_live(f, 0, 2));
    assert!(sm.ns.is_live(f, 0, 2) && sm.ns.lookup(d, b"f17").is_err() && sm.ns.lookup(ROOT_INO, b"moved").is_ok());
    assert_ne!(snapshot::encode(&sm, &members), at_index);
}

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

#[test]
#[ignore = "a measurement: prints the copy cost of a 1,000,000-entry directory"]
fn bigdir_clone_cost() {
    const N: usize = 1_000_000;
    let before = rss();
    let started = Instant::now();
    let (mut sm, d) = big_dir(N);
    let built = started.elapsed();
    let resident = rss().saturating_sub(before);
    let mut copies = Vec::new();
    for round in 0..5 {
        let t = Instant::now();
        let copy = sm.clone();
        let took = t.elapsed();
        // A write after the copy (what the loop does next) pays for what it unshares.
        let t = Instant::now();
        sm.ns.create(d, format!("after{round}").as_bytes(), attrs(), true, 3).expect("create");
        let first_write = t.elapsed();
        println!("copy {round}: clone {took:?}, first create after it {first_write:?}");
        copies.push(copy);
    }
    drop(copies);
    let t = Instant::now();
    let bytes = snapshot::encode(&sm, &BTreeMap::new());
    println!(
        "{N} entries: built in {built:?}, ~{} MB resident, encoded ({} MB) in {:?}",
        resident >> 20,
        bytes.len() >> 20,
        t.elapsed()
    );
}
