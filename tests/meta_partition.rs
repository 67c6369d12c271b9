//! Black-box: a partitioned metadata server never serves a stale read, and
//! catches up once the partition heals.
//!
//! One follower is restarted behind TCP proxies the test controls: it
//! listens on a new address, a proxy on its cluster.toml address relays what
//! its peers send it, and it reaches each peer through a proxy of its own.
//! Cutting every proxy cuts it off from the other two servers both ways,
//! while the test still talks to it directly on its new address.
//!
//! 1. Follower partitioned: a write acknowledged by the majority; reads sent
//!    only to the follower fail or redirect, never answer from its old state.
//!    Healed: it catches up (applied index) and, once made leader, serves the
//!    write.
//! 2. Leader partitioned (the same server, now leader): the majority elects a
//!    new leader and acknowledges a write; reads sent to the old leader
//!    after that acknowledgement never miss the write, and a write sent to it
//!    is never acknowledged nor survives. Healed: it catches up again.

mod harness;
#[path = "harness/meta_cluster.rs"]
mod meta_cluster;
#[path = "harness/proxy.rs"]
mod proxy;

use std::process::Child;
use std::time::{Duration, Instant};

use harness::TestCluster;
use meta_cluster::applied_index;
use proxy::Proxy;
use shardline_client::inode_api::NewFile;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{MetaCallError, MetaClient, Role};
use shardline_types::{ErrorCode, ROOT_INO};

const HOST: &str = "127.0.0.61";

/// A free port on HOST.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind(format!("{HOST}:0")).expect("bind a free port");
    l.local_addr().expect("address").to_string()
}

/// What a read sent only to the partitioned server returned.
#[derive(Debug, PartialEq)]
enum Seen {
    Ino(u64),
    NotFound,
    /// NOT_LEADER, unavailable, timed out or unreachable: no answer.
    Refused(String),
}

fn seen(r: Result<pb::MetaResponse, MetaCallError>) -> Seen {
    match r {
        Ok(pb::MetaResponse { body: Some(RBody::Attr(a)), .. }) => Seen::Ino(a.ino),
        Ok(other) => panic!("unexpected lookup response {other:?}"),
        Err(MetaCallError::Service { code: ErrorCode::NotFound, .. }) => Seen::NotFound,
        Err(MetaCallError::Service { code, message }) => {
            assert!(code.retryable(), "a partitioned server answered {code:?}: {message}");
            Seen::Refused(format!("{code:?}"))
        }
        Err(e) => Seen::Refused(e.to_string()),
    }
}

fn lookup(parent: u64, name: &str) -> Body {
    Body::Lookup(pb::Lookup { parent, name: name.into() })
}

/// The server's own view: (role, applied index), from its Status answer.
async fn own_status(meta: &MetaClient, addr: &str) -> Option<(String, u64)> {
    match meta.call_one(addr, Body::Status(pb::GetStatus {})).await {
        Ok(pb::MetaResponse { body: Some(RBody::Status(st)), .. }) => {
            st.meta.first().map(|m| (m.role.clone(), m.applied_index))
        }
        _ => None,
    }
}

/// Wait until server `id`'s applied index (in `admin status`) reaches `index`.
fn wait_applied(c: &TestCluster, id: u64, index: u64) {
    let start = Instant::now();
    loop {
        let st = c.meta_status();
        if applied_index(&st, id).is_some_and(|a| a >= index) {
            return;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(c.meta_dir(id).join("log")).unwrap_or_default();
            panic!("meta-{id} did not reach index {index}: {st:?}\nits log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The highest applied index any reachable metadata server reports.
fn max_applied(c: &TestCluster) -> u64 {
    c.meta_status().iter().filter_map(|m| m["applied_index"].as_u64()).max().unwrap_or(0)
}

/// Kill and restart leaders other than `target` until `target` leads.
/// Each round first waits for `target` to have applied what the others
/// have: a server whose log lags cannot win the election that follows.
fn make_leader(c: &TestCluster, target: u64, restarted: &mut Vec<Child>) {
    for _ in 0..24 {
        let leader = c.meta_leader(Duration::from_secs(60));
        if leader == target {
            return;
        }
        wait_applied(c, target, max_applied(c));
        meta_cluster::kill_meta_reaped(c, leader, restarted);
        let start = Instant::now();
        while c.meta_leader(Duration::from_secs(60)) == leader {
            assert!(start.elapsed() < Duration::from_secs(60), "meta-{leader} still reported as leader");
            std::thread::sleep(Duration::from_millis(100));
        }
        restarted.push(c.start_meta(leader, &[]));
        wait_applied(c, leader, max_applied(c));
    }
    panic!("meta-{target} never became leader");
}

#[test]
fn partitioned_meta_server_serves_no_stale_reads_and_catches_up() {
    let c = TestCluster::start(61);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let client = rt.block_on(meta_cluster::connect(&c, Duration::from_secs(30)));
    let inodes = client.inodes();
    let dir = rt.block_on(inodes.mkdir(ROOT_INO, "part", 0o755, 0, 0)).expect("mkdir").ino;
    rt.block_on(inodes.create(NewFile::new(dir, "before"))).expect("create before");

    // Restart one follower behind proxies.
    let servers = meta_cluster::meta_servers(&c);
    let leader = c.meta_leader(Duration::from_secs(30));
    let (f, f_addr) = servers.iter().find(|(id, _)| *id != leader).cloned().expect("a follower");
    meta_cluster::kill_meta_reaped(&c, f, &mut []);
    let f_listen = free_addr();
    let mut proxies = vec![Proxy::start(&f_addr, &f_listen)];
    let mut peers = vec![(f, f_addr.clone())];
    for (id, addr) in servers.iter().filter(|(id, _)| *id != f) {
        let p = Proxy::start(&format!("{HOST}:0"), addr);
        peers.push((*id, p.addr.clone()));
        proxies.push(p);
    }
    let mut children = vec![meta_cluster::start_meta_at(&c, f, &f_listen, &peers)];
    wait_applied(&c, f, max_applied(&c));
    let cut = |open: bool| proxies.iter().for_each(|p| p.set_open(open));
    // Talks to the partitioned server only, bypassing the proxies.
    let direct = MetaClient::new(vec![f_listen.clone()], Duration::from_secs(3), c.identity(Role::Client));
    // Followers redirect reads to the leader even when healthy.
    match seen(rt.block_on(direct.call_one(&f_listen, lookup(dir, "before")))) {
        Seen::Refused(_) => {}
        s => panic!("a follower answered a read itself: {s:?}"),
    }

    // 1. Partition the follower; the majority acknowledges a write.
    cut(false);
    let after = rt.block_on(inodes.create(NewFile::new(dir, "after"))).expect("create with a majority").ino;
    let acked_index = max_applied(&c);
    let until = Instant::now() + Duration::from_secs(4);
    let mut tries = 0;
    while Instant::now() < until {
        // Only to the follower, no redirects; and a client that knows only it.
        for r in [
            rt.block_on(direct.call_one(&f_listen, lookup(dir, "after"))),
            rt.block_on(direct.call(lookup(dir, "after"))),
        ] {
            match seen(r) {
                Seen::Refused(_) => {}
                s => panic!("the partitioned follower served a read: {s:?} (the majority acknowledged ino {after})"),
            }
            tries += 1;
        }
        let (role, applied) = rt.block_on(own_status(&direct, &f_listen)).expect("follower status");
        assert!(applied < acked_index, "meta-{f} is not cut off: applied {applied} ≥ {acked_index}");
        assert_ne!(role, "leader", "a partitioned follower became leader");
    }
    eprintln!("partitioned follower meta-{f}: {tries} reads refused, none stale");

    // Heal: it catches up, and serves the write once it leads.
    cut(true);
    wait_applied(&c, f, acked_index);
    make_leader(&c, f, &mut children);
    let st = c.meta_status();
    eprintln!("meta-{f} caught up and leads: {st:?}");
    assert_eq!(seen(rt.block_on(direct.call_one(&f_listen, lookup(dir, "after")))), Seen::Ino(after));

    // 2. Partition it while it leads. Reads sent to it from the start.
    cut(false);
    let cut_at = Instant::now();
    let reader = {
        let (addr, meta) = (
            f_listen.clone(),
            MetaClient::new(vec![f_listen.clone()], Duration::from_secs(3), c.identity(Role::Client)),
        );
        rt.spawn(async move {
            let mut out = Vec::new();
            while cut_at.elapsed() < Duration::from_secs(12) {
                let call = Instant::now();
                let s = seen(meta.call_one(&addr, lookup(dir, "after2")).await);
                out.push((call, Instant::now(), s));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            out
        })
    };
    // A write sent to the cut-off leader: it must not be acknowledged.
    let ghost = {
        let (addr, meta) = (
            f_listen.clone(),
            MetaClient::new(vec![f_listen.clone()], Duration::from_secs(3), c.identity(Role::Client)),
        );
        rt.spawn(async move {
            let body = Body::Mkdir(pb::Mkdir { parent: dir, name: "ghost".into(), mode: 0o755, ..Default::default() });
            meta.call_one(&addr, body).await
        })
    };
    let after2 = rt.block_on(inodes.create(NewFile::new(dir, "after2"))).expect("create with a majority").ino;
    let acked_at = Instant::now();
    eprintln!("majority acknowledged a write {:?} after cutting off leader meta-{f}", acked_at - cut_at);
    let reads = rt.block_on(reader).expect("reader");
    let ghost = rt.block_on(ghost).expect("ghost writer");
    assert!(ghost.is_err(), "a cut-off leader acknowledged a write: {ghost:?}");
    let (mut early, mut late) = (0, 0);
    for (call, ret, s) in &reads {
        if *call > acked_at {
            late += 1;
            assert!(matches!(s, Seen::Refused(_) | Seen::Ino(_)), "stale read from the cut-off leader: {s:?}");
            if let Seen::Ino(i) = s {
                assert_eq!(*i, after2);
            }
        } else if *ret < acked_at {
            early += 1;
        }
    }
    assert!(late > 0, "no read was sent after the write was acknowledged");
    let mut kinds = std::collections::BTreeMap::new();
    for (_, _, s) in reads.iter().filter(|r| r.0 > acked_at) {
        *kinds.entry(format!("{s:?}")).or_insert(0) += 1;
    }
    let first = reads.first().map(|(call, ret, s)| (*ret - *call, s));
    eprintln!(
        "cut-off leader meta-{f}: {} reads sent to it ({early} answered before the write was acknowledged; \
         the first took {:?} and gave {:?}); the {late} sent after the acknowledgement: {kinds:?}; \
         the write sent to it: {:?}",
        reads.len(),
        first.map(|f| f.0),
        first.map(|f| f.1),
        ghost.as_ref().err().map(|e| e.to_string())
    );
    let (role, _) = rt.block_on(own_status(&direct, &f_listen)).expect("status");
    assert_ne!(role, "leader", "a leader without a quorum did not step down");

    // Heal: it catches up; the unacknowledged write is gone for good.
    let target = max_applied(&c);
    cut(true);
    wait_applied(&c, f, target);
    let everyone = MetaClient::new(
        std::iter::once(f_listen.clone()).chain(servers.iter().map(|(_, a)| a.clone())).collect(),
        Duration::from_secs(30),
        c.identity(Role::Client),
    );
    assert_eq!(seen(rt.block_on(everyone.call(lookup(dir, "after2")))), Seen::Ino(after2));
    assert_eq!(seen(rt.block_on(everyone.call(lookup(dir, "ghost")))), Seen::NotFound);
    make_leader(&c, f, &mut children);
    assert_eq!(seen(rt.block_on(direct.call_one(&f_listen, lookup(dir, "after2")))), Seen::Ino(after2));
    assert_eq!(seen(rt.block_on(direct.call_one(&f_listen, lookup(dir, "ghost")))), Seen::NotFound);
    eprintln!("healed: meta-{f} caught up and serves both writes as leader: {:?}", c.meta_status());

    drop(proxies);
    for child in children {
        meta_cluster::reap(child);
    }
}

/// Found by the nemesis (issue 13): a metadata server wiped and rejoined
/// (`admin meta remove`, `shardline meta --join`, `admin meta add`) while
/// the leader's log still held the removal learned that log from its start
/// rather than from a snapshot. Starting with no voters, it skipped the
/// removal and applied "add me" to an empty configuration: it took itself
/// for a one-voter cluster, elected itself once the leader was gone, and
/// served (and acknowledged writes to) a stale copy of the namespace. Here
/// the other two servers are stopped once it has caught up: a server that
/// knows it is one of three can never lead alone.
#[test]
fn a_rejoined_wiped_meta_server_never_leads_a_cluster_of_its_own() {
    let c = TestCluster::start(117);
    c.ok(&["mkdir", "/rejoin"]);
    let leader = c.meta_leader(Duration::from_secs(30));
    let servers = meta_cluster::meta_servers(&c);
    let (wiped, addr) = servers.iter().find(|(id, _)| *id != leader).cloned().expect("a follower");
    meta_cluster::kill_meta_reaped(&c, wiped, &mut []);
    std::fs::remove_dir_all(c.meta_dir(wiped)).expect("wipe its folder");
    c.ok(&["admin", "meta", "remove", "--id", &wiped.to_string()]);
    // Far fewer changes than a snapshot interval: the removal stays in the log.
    c.ok(&["mkdir", "/rejoin/while-away"]);
    let child = c.start_meta(wiped, &["--join"]);
    c.ok(&["admin", "meta", "add", "--id", &wiped.to_string(), "--addr", &addr]);
    c.ok(&["mkdir", "/rejoin/after"]);
    wait_applied(&c, wiped, max_applied(&c));
    for (id, _) in servers.iter().filter(|(id, _)| *id != wiped) {
        meta_cluster::kill_meta_reaped(&c, *id, &mut []);
    }
    // Well past several election timeouts (10-20 ticks of 100 ms).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let meta = MetaClient::new(vec![addr.clone()], Duration::from_secs(2), c.identity(Role::Client));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        if let Some((role, _)) = rt.block_on(own_status(&meta, &addr)) {
            assert_ne!(role, "leader", "the rejoined server leads with the other two servers gone");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    meta_cluster::reap(child);
}

/// Found by the nemesis (issue 13): a metadata request waited up to 10 s
/// for an answer from one server before trying the next. When the leader
/// was paused (SIGSTOP: connections accepted, nothing answered), every data
/// server's heartbeat hung on it for those 10 s, and the new leader,
/// elected within two, declared them all down after its 3 s timeout
/// (remapping every placement group onto nothing). A paused leader must not
/// make live data servers look dead.
#[test]
fn a_paused_meta_leader_does_not_make_live_data_servers_look_dead() {
    let c = TestCluster::start(118);
    c.ok(&["mkdir", "/pause"]);
    let leader = c.meta_leader(Duration::from_secs(30));
    let pid: i32 = std::fs::read_to_string(c.meta_dir(leader).join("pid")).expect("pid").trim().parse().expect("pid");
    // SAFETY: pausing a server process this test started (resumed below).
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let paused = Instant::now();
    let mut new_leader = None;
    let mut down_seen = Vec::new();
    // Long past the election and the 3 s failure timeout.
    while paused.elapsed() < Duration::from_secs(9) {
        let st: serde_json::Value =
            serde_json::from_slice(&c.cli(&["admin", "status", "--json"]).stdout).unwrap_or_default();
        if let Some(l) = st["meta"].as_array().and_then(|m| m.iter().find(|m| m["role"] == "leader")) {
            new_leader = l["id"].as_u64();
            for d in st["data"].as_array().into_iter().flatten() {
                // "unresponsive": not heard from since the election, shown
                // only; "down" is the leader's verdict, which remaps.
                if d["state"] == "down" {
                    down_seen.push(format!("data-{} {} at {:?}", d["id"], d["state"], paused.elapsed()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(new_leader.is_some_and(|l| l != leader), "no new leader while meta-{leader} was paused");
    assert!(down_seen.is_empty(), "live data servers were declared down: {down_seen:?}");
}
