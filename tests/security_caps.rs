//! Shard capabilities and hardened request handlers (issue 12, items 2 and
//! 6), against a real cluster of separate processes on 127.0.0.105–109.
//!
//! A data server refuses a shard get, put or delete that carries no token, a
//! forged one, an expired one, one for another chunk or one issued under
//! placement epoch 0, each with a clear error and without changing anything;
//! scrub and GC need a cluster-wide token and GC grace has a floor; the
//! client's own reads, writes, scrub and GC keep working.

mod harness;

use std::collections::HashMap;
use std::time::Duration;

use harness::{content, TestCluster, CHUNK};
use shardline_crypto::{cap_ops, issue_cap, now_ms, CapKey, Capability};
use shardline_proto::v1 as pb;
use shardline_rpc::shard_client::{self, ShardError};
use shardline_rpc::{MetaClient, Pool, Role};
use shardline_types::{ErrorCode, ShardKey, ROOT_INO};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// The servers' addresses by kind and id, from `cluster.toml`.
fn addrs(c: &TestCluster, kind: &str) -> HashMap<u64, String> {
    c.servers(kind).into_iter().collect()
}

fn meta_client(c: &TestCluster) -> MetaClient {
    MetaClient::new(addrs(c, "meta").into_values().collect(), Duration::from_secs(10), c.identity(Role::Client))
}

/// The chunk list of `/name`, with the get tokens the metadata service
/// hands out with it.
async fn chunks_of(meta: &MetaClient, name: &str) -> (u64, Vec<pb::Chunk>) {
    let lookup = pb::Lookup { parent: ROOT_INO, name: name.as_bytes().to_vec() };
    let resp = meta.call(pb::meta_request::Body::Lookup(lookup)).await.expect("lookup");
    let Some(pb::meta_response::Body::Attr(attr)) = resp.body else { panic!("lookup answer") };
    let get = pb::GetChunks { ino: attr.ino, from_index: 0, limit: 1000 };
    let resp = meta.call(pb::meta_request::Body::GetChunks(get)).await.expect("chunk list");
    let Some(pb::meta_response::Body::Chunks(list)) = resp.body else { panic!("chunk list answer") };
    (attr.ino, list.chunks)
}

/// A token like the metadata service's, made by the test with `key`.
fn token(key: &CapKey, k: &ShardKey, ops: u32, epoch: u64, expires_ms: u64) -> pb::ShardCap {
    let cap = Capability { file_id: k.file_id, chunk_index: k.chunk_index, version: k.version, ops, epoch, expires_ms };
    issue_cap(key, &cap)
}

/// Assert a shard request was refused for `why` (a phrase of the message).
fn assert_refused<T: std::fmt::Debug>(what: &str, r: Result<T, ShardError>, code: ErrorCode, why: &str) {
    let e = r.expect_err(&format!("{what} was accepted"));
    assert_eq!(e.code, code, "{what}: {e}");
    assert!(e.detail.contains(why), "{what}: expected {why:?} in {e}");
}

#[test]
fn shard_requests_without_a_valid_token_are_refused_and_change_nothing() {
    let c = TestCluster::start(105);
    let data = content(2 * CHUNK, 1);
    c.put_bytes("/f", &data);
    let shards = c.shard_files();
    let victim = shards.iter().find(|s| s.key.chunk_index == 0 && s.key.shard_index == 0).expect("shard 0").clone();
    let before = victim.payload();
    let addr = addrs(&c, "data")[&victim.server].clone();
    // Only the servers hold the key; the test reads it to make tokens that
    // are authentic but expired, for another chunk, or for epoch 0.
    let key = CapKey::load(&c.data_dir().join("cap.key")).expect("cluster capability key");
    let forger = CapKey::from_bytes(key.id(), rand::random());
    let rt = runtime();
    rt.block_on(async {
        let meta = meta_client(&c);
        let (ino, chunks) = chunks_of(&meta, "f").await;
        assert_eq!(ino, victim.key.file_id);
        let real = chunks[0].cap.clone().expect("chunk lists carry get tokens");
        let other_chunk = chunks[1].cap.clone().expect("a token for chunk 1");
        let epoch = real.epoch;
        assert!(epoch > 0, "a cluster with data servers has a placement epoch");
        let pool = Pool::new(c.identity(Role::Client), Role::Data, Duration::from_secs(2), Duration::from_secs(10));
        let k = victim.key;
        let got = shard_client::get(&pool, &addr, &k, Some(&real), epoch).await.expect("a real token reads");
        assert_eq!(got, before, "the test talks to the server holding the shard");

        let live = now_ms() + 60_000;
        // Tokens for `ops` on shard `k` that must be refused, and why.
        let bad = |k: ShardKey, ops| {
            let other = ShardKey { chunk_index: 1, ..k };
            let another_chunk =
                if ops == cap_ops::GET { other_chunk.clone() } else { token(&key, &other, ops, epoch, live) };
            let expired = token(&key, &k, ops, epoch, now_ms() - 3_600_000);
            vec![
                ("no token", None, ErrorCode::PermissionDenied, "no capability token"),
                ("forged", Some(token(&forger, &k, ops, epoch, live)), ErrorCode::PermissionDenied, "forged"),
                ("expired", Some(expired), ErrorCode::PermissionDenied, "expired"),
                (
                    "another chunk's",
                    Some(another_chunk),
                    ErrorCode::PermissionDenied,
                    "capability token is for chunk 1",
                ),
                ("epoch 0", Some(token(&key, &k, ops, 0, live)), ErrorCode::StaleEpoch, "stale placement epoch 0"),
            ]
        };
        for (what, cap, code, why) in bad(k, cap_ops::GET) {
            let r = shard_client::get(&pool, &addr, &k, cap.as_ref(), epoch).await;
            assert_refused(&format!("get with {what}"), r, code, why);
        }
        // Overwriting the stored shard, and writing a new version.
        let garbage = bytes::Bytes::from(vec![0xa5u8; before.len()]);
        let fresh = ShardKey { version: k.version ^ 1, ..k };
        for target in [k, fresh] {
            for (what, cap, code, why) in bad(target, cap_ops::PUT) {
                let r = shard_client::put(&pool, &addr, &target, garbage.clone(), cap.as_ref(), epoch, (4, 2)).await;
                assert_refused(&format!("put with {what}"), r, code, why);
            }
        }
        let read_token = ("a read token", Some(real.clone()), ErrorCode::PermissionDenied, "does not allow delete");
        // Deletes do not check epochs (a stale map only means the shard
        // may have moved already).
        let deletes = bad(k, cap_ops::DELETE).into_iter().filter(|(what, ..)| *what != "epoch 0").chain([read_token]);
        for (what, cap, code, why) in deletes {
            let r = shard_client::delete(&pool, &addr, &k, cap.as_ref()).await;
            assert_refused(&format!("delete with {what}"), r, code, why);
        }
        // Scrub and GC without a cluster-wide token, or with a chunk's.
        for cap in [None, Some(real.clone())] {
            let body = pb::data_request::Body::Gc(pb::CollectGarbage { grace_ms: 3_600_000, cap });
            let frame = shardline_rpc::Frame::from_message(&pb::DataRequest { body: Some(body) }, bytes::Bytes::new());
            let resp: pb::DataResponse = pool.call(&addr, &frame).await.expect("gc call").decode().expect("decode");
            let e = resp.error.expect("gc refused");
            assert_eq!(e.code, pb::ErrorCode::PermissionDenied as i32, "{}", e.message);
        }
    });
    // Nothing changed: the shard's bytes, the shard count, the file.
    assert_eq!(victim.payload(), before, "a refused request changed the shard");
    assert_eq!(c.shard_files().len(), shards.len(), "a refused request added or removed a shard");
    assert_eq!(c.get_bytes("/f").expect("read back"), data);

    // The cluster's own operations carry tokens and keep working.
    let out = c.cli(&["admin", "gc", "--grace-ms", "0"]);
    assert!(!out.status.success(), "GC with zero grace ran");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("below this server's floor"), "{err}");
    let gc: serde_json::Value = serde_json::from_str(&c.ok(&["admin", "gc", "--json"])).expect("gc JSON");
    assert_eq!(gc["deleted"], 0, "{gc}");
    let scrub: serde_json::Value = serde_json::from_str(&c.ok(&["admin", "scrub", "--json"])).expect("scrub JSON");
    assert_eq!(scrub["checked"].as_u64(), Some(shards.len() as u64), "{scrub}");
    let new = content(CHUNK + 7, 2);
    c.put_bytes("/f", &new);
    c.put_bytes("/g", &data);
    assert_eq!(c.get_bytes("/f").expect("read the overwrite"), new);
    assert_eq!(c.get_bytes("/g").expect("read the new file"), data);
}

/// Send one Raft envelope from peer `from` to the metadata server at
/// `addr`, as a single frame with that peer's own certificate (a peer that
/// is compromised or broken: mutual TLS lets it through, the checks of
/// `raft_guard.rs` must not); the server's answer.
async fn send_raft(c: &TestCluster, addr: &str, from: u64, msg: &raft::prelude::Message) -> pb::MetaResponse {
    use protobuf::Message as _;
    let bytes = msg.write_to_bytes().expect("encode raft message");
    let req = pb::MetaRequest {
        body: Some(pb::meta_request::Body::Raft(pb::RaftBatch { from, messages: vec![bytes], snapshot_part: None })),
        ..Default::default()
    };
    let pool = Pool::new(c.server_identity("meta", from), Role::Meta, Duration::from_secs(2), Duration::from_secs(10));
    let frame = shardline_rpc::Frame::from_message(&req, bytes::Bytes::new());
    pool.call(addr, &frame).await.expect("raft call").decode().expect("decode the answer")
}

#[test]
fn forged_raft_messages_are_refused_and_the_servers_keep_running() {
    use raft::prelude::{ConfState, Entry, Message, MessageType, Snapshot, SnapshotMetadata};
    let mut c = TestCluster::start(106);
    let data = content(CHUNK + 3, 6);
    c.put_bytes("/f", &data);
    let metas = c.meta_status();
    let leader = metas.iter().find(|m| m["role"] == "leader").expect("a leader").clone();
    let follower = metas.iter().find(|m| m["role"] == "follower").expect("a follower").clone();
    let (leader_id, term) = (leader["id"].as_u64().expect("id"), leader["term"].as_u64().expect("term"));
    let (follower_id, commit) =
        (follower["id"].as_u64().expect("id"), follower["commit_index"].as_u64().expect("commit"));
    let addr = addrs(&c, "meta")[&follower_id].clone();

    // The attack of issue 12: the leader's id and term, an entry that is not
    // a MetaRequest right after the follower's log, and a commit index
    // covering it.
    let entry = Entry { index: commit + 1, term, data: b"not a MetaRequest".to_vec().into(), ..Default::default() };
    let mut append = Message::default();
    append.set_msg_type(MessageType::MsgAppend);
    append.from = leader_id;
    append.to = follower_id;
    append.term = term;
    append.log_term = term;
    append.index = commit;
    append.commit = commit + 1;
    append.set_entries(vec![entry].into());
    // A snapshot whose ConfState raft-rs could not restore (a fatal! path).
    let mut meta = SnapshotMetadata { index: commit + 100, term, ..Default::default() };
    meta.set_conf_state(ConfState::default());
    let mut snap = Snapshot::default();
    snap.set_metadata(meta);
    let mut snapshot = Message::default();
    snapshot.set_msg_type(MessageType::MsgSnapshot);
    snapshot.from = leader_id;
    snapshot.to = follower_id;
    snapshot.term = term;
    snapshot.set_snapshot(snap);

    // A read-index request without its context, to the leader (raft-rs
    // reads entries[0] of it unchecked).
    let follower_from = follower_id;
    let mut read_index = Message::default();
    read_index.set_msg_type(MessageType::MsgReadIndex);
    read_index.from = follower_from;
    read_index.to = leader_id;
    read_index.term = term;
    let leader_addr = addrs(&c, "meta")[&leader_id].clone();

    let rt = runtime();
    for (what, to, from, msg, why) in [
        ("append", &addr, leader_id, &append, "entry"),
        ("snapshot", &addr, leader_id, &snapshot, "conf state"),
        ("read index", &leader_addr, follower_from, &read_index, "read context"),
    ] {
        let resp = rt.block_on(send_raft(&c, to, from, msg));
        let e = resp.error.unwrap_or_else(|| panic!("the forged {what} was accepted"));
        assert_eq!(e.code, pb::ErrorCode::InvalidArgument as i32, "{}", e.message);
        assert!(e.message.contains("bad raft message") && e.message.contains(why), "{what}: {}", e.message);
    }
    // The follower and the leader keep running; the cluster serves.
    for id in [follower_id, leader_id] {
        let pid: i32 = std::fs::read_to_string(c.meta_dir(id).join("pid"))
            .unwrap_or_else(|e| panic!("metadata server {id} stopped (its pid file is gone: {e})"))
            .trim()
            .parse()
            .expect("pid");
        // SAFETY: signal 0 only checks that the process exists.
        assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "metadata server {id} died");
    }
    c.put_bytes("/g", &data);
    assert_eq!(c.get_bytes("/g").expect("read after the attack"), data);
    c.wait_status(Duration::from_secs(30), |v| {
        v["meta"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["id"].as_u64() == Some(follower_id) && m["role"] == "follower"))
    });
    // Nothing undecodable was persisted: the whole cluster restarts.
    c.restart();
    assert_eq!(c.get_bytes("/f").expect("read after restart"), data);
    assert_eq!(c.get_bytes("/g").expect("read after restart"), data);
}
