//! Black-box: the metadata service stays linearizable while its leader is
//! SIGKILLed, repeatedly.
//!
//! Four native clients (separate client ids) create, rename, unlink and look
//! up three names in one directory, recording when each operation was
//! invoked and completed on one monotonic clock and what it returned. A
//! fifth client creates fresh files in another directory to measure how long
//! writes stall after each kill. Meanwhile the test kills the current leader
//! four times and restarts it a little later. Afterwards the history,
//! closed by a final lookup of every name, must pass the Wing–Gong checker in
//! `harness/linearizability.rs` against the sequential namespace model below:
//! so every acknowledged operation is reflected in the final state, and no
//! client saw a state that no single order of the operations explains.
//! Operations that timed out count as possibly applied, at any time after
//! their invocation. Lookups go through each client's coherent metadata
//! cache (docs/metadata-cache.md), so lookups answered from memory are
//! checked too; the test asserts some were.

mod harness;
#[path = "harness/linearizability.rs"]
mod linearizability;
#[path = "harness/meta_cluster.rs"]
mod meta_cluster;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::TestCluster;
use linearizability::{check, Model, Operation, Verdict};
use rand::{Rng, SeedableRng};
use shardline_client::inode_api::NewFile;
use shardline_client::{Client, ClientError};
use shardline_rpc::MetaCallError;
use shardline_types::{ErrorCode, ROOT_INO};

const NAMES: [&str; 3] = ["a", "b", "c"];
const CLIENTS: usize = 4;
const KILLS: usize = 4;
/// A bound on each client's operations; clients pause 5–15 ms between
/// operations so that a run records a few thousand (the checker's memo holds
/// one bit per operation per visited state).
const MAX_OPS_PER_CLIENT: usize = 4000;

// ---------------------------------------------------------------------------
// The sequential specification: one directory holding up to three names.

#[derive(Debug, Clone, Copy)]
enum NsIn {
    /// Exclusive create; `op` is the operation's index in the history (an
    /// unknown-outcome create's inode number is learned when a lookup sees it).
    Create {
        name: usize,
        op: usize,
    },
    Unlink {
        name: usize,
    },
    Rename {
        from: usize,
        to: usize,
    },
    Lookup {
        name: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NsOut {
    /// Create or lookup: the inode number.
    Ino(u64),
    /// Unlink or rename succeeded.
    Done,
    NotFound,
    Exists,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Val {
    Ino(u64),
    /// Made by the create with this history index, whose reply was lost.
    Unseen(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct NsState {
    names: [Option<Val>; NAMES.len()],
    /// Inode numbers already bound to an unknown-outcome create.
    bound: BTreeSet<u64>,
}

struct Namespace {
    /// Inode numbers returned by creates that completed: an unseen file is
    /// none of these.
    created: HashSet<u64>,
}

impl Model for Namespace {
    type State = NsState;
    type Input = NsIn;
    type Output = NsOut;

    fn init(&self) -> NsState {
        NsState::default()
    }

    fn step(&self, s: &NsState, input: &NsIn, out: Option<&NsOut>) -> Option<NsState> {
        let mut n = s.clone();
        match *input {
            NsIn::Create { name, op } => match (&s.names[name], out) {
                (Some(_), None | Some(NsOut::Exists)) => {}
                (None, None) => n.names[name] = Some(Val::Unseen(op)),
                (None, Some(NsOut::Ino(ino))) if !s.bound.contains(ino) => n.names[name] = Some(Val::Ino(*ino)),
                _ => return None,
            },
            NsIn::Unlink { name } => match (&s.names[name], out) {
                (Some(_), None | Some(NsOut::Done)) => n.names[name] = None,
                (None, None | Some(NsOut::NotFound)) => {}
                _ => return None,
            },
            NsIn::Rename { from, to } => match (&s.names[from], out) {
                (Some(_), None | Some(NsOut::Done)) => {
                    if from != to {
                        n.names[to] = n.names[from].take();
                    }
                }
                (None, None | Some(NsOut::NotFound)) => {}
                _ => return None,
            },
            NsIn::Lookup { name } => match (&s.names[name], out) {
                (_, None) => {}
                (None, Some(NsOut::NotFound)) => {}
                (Some(Val::Ino(a)), Some(NsOut::Ino(b))) if a == b => {}
                (Some(Val::Unseen(_)), Some(NsOut::Ino(b))) if !self.created.contains(b) && !s.bound.contains(b) => {
                    n.names[name] = Some(Val::Ino(*b));
                    n.bound.insert(*b);
                }
                _ => return None,
            },
        }
        Some(n)
    }
}

// ---------------------------------------------------------------------------
// Recording a history against the real cluster.

#[derive(Debug, Clone)]
struct Rec {
    client: usize,
    input: NsIn,
    output: Option<NsOut>,
    call: u64,
    ret: u64,
    /// Why the outcome is unknown.
    error: Option<String>,
}

/// A definite outcome, or None (with the error) when the outcome is unknown.
fn outcome<T>(r: Result<T, ClientError>, ok: impl FnOnce(T) -> NsOut) -> (Option<NsOut>, Option<String>) {
    match r {
        Ok(v) => (Some(ok(v)), None),
        Err(ClientError::Meta(MetaCallError::Service { code: ErrorCode::NotFound, .. })) => {
            (Some(NsOut::NotFound), None)
        }
        Err(ClientError::Meta(MetaCallError::Service { code: ErrorCode::AlreadyExists, .. })) => {
            (Some(NsOut::Exists), None)
        }
        Err(e) => (None, Some(e.to_string())),
    }
}

fn ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// A client's history, and how many of its lookups its metadata cache answered.
async fn worker(client: Client, dir: u64, id: usize, t0: Instant, stop: Arc<AtomicBool>) -> (Vec<Rec>, u64) {
    let inodes = client.inodes();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed ^ id as u64);
    let mut recs = Vec::new();
    while !stop.load(Ordering::Relaxed) && recs.len() < MAX_OPS_PER_CLIENT {
        let name = rng.gen_range(0..NAMES.len());
        let roll = rng.gen_range(0..100);
        let call = ns(t0);
        let (input, (output, error)) = if roll < 35 {
            (NsIn::Lookup { name }, outcome(inodes.lookup(dir, NAMES[name]).await, |a| NsOut::Ino(a.ino)))
        } else if roll < 60 {
            let r = inodes.create(NewFile::new(dir, NAMES[name])).await;
            (NsIn::Create { name, op: 0 }, outcome(r, |a| NsOut::Ino(a.ino)))
        } else if roll < 80 {
            (NsIn::Unlink { name }, outcome(inodes.unlink(dir, NAMES[name]).await, |_| NsOut::Done))
        } else {
            let to = rng.gen_range(0..NAMES.len());
            let r = inodes.rename(dir, NAMES[name], dir, NAMES[to]).await;
            (NsIn::Rename { from: name, to }, outcome(r, |_| NsOut::Done))
        };
        recs.push(Rec { client: id, input, output, call, ret: ns(t0), error });
        tokio::time::sleep(Duration::from_millis(rng.gen_range(5..15))).await;
    }
    (recs, client.metadata_cache_stats().0)
}

/// Creates fresh files one after another: (invoked, completed, succeeded).
async fn prober(client: Client, dir: u64, t0: Instant, stop: Arc<AtomicBool>) -> Vec<(u64, u64, bool)> {
    let inodes = client.inodes();
    let mut out = Vec::new();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let call = ns(t0);
        let ok = inodes.create(NewFile::new(dir, format!("p{n}"))).await.is_ok();
        out.push((call, ns(t0), ok));
    }
    out
}

/// Turn the records into a checkable history: lookups of unknown outcome
/// carry no information and are dropped; other unknown outcomes never
/// complete (+∞).
fn history(recs: &[Rec]) -> Vec<Operation<NsIn, NsOut>> {
    let mut h = Vec::new();
    for r in recs {
        if r.output.is_none() && matches!(r.input, NsIn::Lookup { .. }) {
            continue;
        }
        let input = match r.input {
            NsIn::Create { name, .. } => NsIn::Create { name, op: h.len() },
            i => i,
        };
        h.push(Operation { client: r.client, input, output: r.output, call: r.call, ret: r.output.map(|_| r.ret) });
    }
    h
}

fn created_inos(h: &[Operation<NsIn, NsOut>]) -> HashSet<u64> {
    h.iter()
        .filter_map(|o| match (o.input, o.output) {
            (NsIn::Create { .. }, Some(NsOut::Ino(i))) => Some(i),
            _ => None,
        })
        .collect()
}

fn median_ms(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

#[test]
fn namespace_history_is_linearizable_across_leader_kills() {
    let c = TestCluster::start(60);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let setup = rt.block_on(meta_cluster::connect(&c, Duration::from_secs(30)));
    let dir = rt.block_on(setup.inodes().mkdir(ROOT_INO, "lin", 0o755, 0, 0)).expect("mkdir /lin").ino;
    let probe_dir = rt.block_on(setup.inodes().mkdir(ROOT_INO, "probe", 0o755, 0, 0)).expect("mkdir /probe").ino;

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for id in 0..CLIENTS {
        // Each its own client id. Half retry through elections for 15 s; the
        // other half give up after 400 ms, shorter than a failover, so some of
        // their operations end with an unknown outcome.
        let deadline = if id % 2 == 0 { Duration::from_secs(15) } else { Duration::from_millis(400) };
        let client = rt.block_on(meta_cluster::connect(&c, deadline));
        workers.push(rt.spawn(worker(client, dir, id, t0, stop.clone())));
    }
    let probe_client = rt.block_on(meta_cluster::connect(&c, Duration::from_secs(30)));
    let probe = rt.spawn(prober(probe_client, probe_dir, t0, stop.clone()));

    // Kill the leader, restart it a little later, repeat.
    let mut kills: Vec<(u64, u64)> = Vec::new();
    let mut restarted = Vec::new();
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..KILLS {
        let leader = c.meta_leader(Duration::from_secs(60));
        kills.push((leader, ns(t0)));
        meta_cluster::kill_meta_reaped(&c, leader, &mut restarted);
        std::thread::sleep(Duration::from_secs(2));
        restarted.push(c.start_meta(leader, &[]));
        std::thread::sleep(Duration::from_millis(2500));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let mut recs: Vec<Rec> = Vec::new();
    let mut cached = 0;
    for w in workers {
        let (history, hits) = rt.block_on(w).expect("worker");
        recs.extend(history);
        cached += hits;
    }
    // The history holds lookups answered from the coherent metadata cache
    // (docs/metadata-cache.md): the checker covers them too.
    eprintln!("  lookups answered from client metadata caches: {cached}");
    assert!(cached > 0, "no lookup was answered from a metadata cache");
    let probes = rt.block_on(probe).expect("prober");
    let run_secs = t0.elapsed().as_secs_f64();

    // Close the history: every name looked up after everything else.
    let final_client = rt.block_on(meta_cluster::connect(&c, Duration::from_secs(30)));
    let mut finals = Vec::new();
    for (name, n) in NAMES.iter().enumerate() {
        let call = ns(t0);
        let (output, error) = outcome(rt.block_on(final_client.inodes().lookup(dir, n)), |a| NsOut::Ino(a.ino));
        assert!(output.is_some(), "final lookup of {n} failed: {error:?}");
        finals.push(output);
        recs.push(Rec { client: CLIENTS, input: NsIn::Lookup { name }, output, call, ret: ns(t0), error: None });
    }
    // The listing agrees with the lookups and holds nothing else.
    let page = rt.block_on(final_client.inodes().readdir(dir, "", 0, false)).expect("readdir /lin");
    for e in &page.entries {
        let name = String::from_utf8_lossy(&e.name);
        let i = NAMES.iter().position(|n| n.as_bytes() == e.name).unwrap_or_else(|| panic!("unexpected entry {name}"));
        assert_eq!(finals[i], Some(NsOut::Ino(e.ino)), "listing vs lookup of {name}");
    }
    assert_eq!(page.entries.len(), finals.iter().filter(|o| **o != Some(NsOut::NotFound)).count());

    // Report what happened.
    let count = |f: &dyn Fn(&Rec) -> bool| recs.iter().filter(|r| f(r)).count();
    let unknown: Vec<&Rec> = recs.iter().filter(|r| r.output.is_none()).collect();
    eprintln!(
        "history: {} operations in {run_secs:.1} s ({} lookups, {} creates, {} unlinks, {} renames); \
         {} ok, {} NotFound, {} Exists, {} unknown outcome; {} leader kills: {kills:?}",
        recs.len(),
        count(&|r| matches!(r.input, NsIn::Lookup { .. })),
        count(&|r| matches!(r.input, NsIn::Create { .. })),
        count(&|r| matches!(r.input, NsIn::Unlink { .. })),
        count(&|r| matches!(r.input, NsIn::Rename { .. })),
        count(&|r| matches!(r.output, Some(NsOut::Ino(_) | NsOut::Done))),
        count(&|r| r.output == Some(NsOut::NotFound)),
        count(&|r| r.output == Some(NsOut::Exists)),
        unknown.len(),
        kills.len(),
    );
    for id in 0..CLIENTS {
        let last = recs.iter().filter(|r| r.client == id).map(|r| r.ret).max().unwrap_or(0);
        let last_kill = kills.last().map_or(0, |k| k.1);
        assert!(last > last_kill, "client {id} stopped before the last kill");
    }
    for r in &unknown {
        eprintln!("  unknown outcome: {:?} at {} ms: {:?}", r.input, r.call / 1_000_000, r.error);
    }

    // Failover: from each kill to the completion of the first create
    // invoked after it.
    let mut stalls = Vec::new();
    for (leader, k) in &kills {
        match probes.iter().find(|(call, _, ok)| *ok && *call >= *k) {
            Some((_, ret, _)) => {
                let ms = (*ret - *k) as f64 / 1e6;
                eprintln!("  failover after killing meta-{leader}: writes stalled {ms:.0} ms");
                stalls.push(ms);
            }
            None => eprintln!("  failover after killing meta-{leader}: no create succeeded afterwards"),
        }
    }
    if !stalls.is_empty() {
        let (min, med, max) = median_ms(stalls);
        eprintln!(
            "failover time (SIGKILL of the leader to the first successful create): \
             min {min:.0} ms, median {med:.0} ms, max {max:.0} ms over {} kills; {} probe creates",
            kills.len(),
            probes.len()
        );
    }

    let h = history(&recs);
    let model = Namespace { created: created_inos(&h) };
    let started = Instant::now();
    let verdict = check(&model, &h, 200_000_000);
    eprintln!("linearizability check of {} operations: {} in {:?}", h.len(), verdict_name(&verdict), started.elapsed());
    // Negative control on the same data: one lookup made to see a file that
    // was only created after it completed must be rejected.
    let mut forged = h.clone();
    let second_kill = kills[1].1;
    let future = forged.iter().enumerate().find_map(|(i, l)| {
        let ret = l.ret.filter(|_| matches!(l.input, NsIn::Lookup { .. }) && l.call > second_kill)?;
        forged.iter().find_map(|o| match (o.input, o.output) {
            (NsIn::Create { .. }, Some(NsOut::Ino(ino))) if o.call > ret => Some((i, ino)),
            _ => None,
        })
    });
    let (i, ino) = future.expect("a lookup followed by a create");
    forged[i].output = Some(NsOut::Ino(ino));
    let forged_verdict = check(&model, &forged, 200_000_000);
    eprintln!("negative control (lookup #{i} forged to see inode {ino} early): {}", verdict_name(&forged_verdict));
    assert!(matches!(forged_verdict, Verdict::NotLinearizable { .. }), "the checker accepted a forged history");

    match verdict {
        Verdict::Linearizable(order) => assert!(order.len() >= h.iter().filter(|o| o.ret.is_some()).count()),
        Verdict::NotLinearizable { deepest, stuck } => {
            for i in &stuck {
                eprintln!("  could not place #{i}: {:?}", h[*i]);
            }
            // Every operation from 300 ms before the first stuck one, in call order.
            let from = stuck.iter().map(|i| h[*i].call).min().unwrap_or(0).saturating_sub(300_000_000);
            let mut around: Vec<(usize, &Operation<NsIn, NsOut>)> =
                h.iter().enumerate().filter(|(_, o)| o.call >= from).collect();
            around.sort_by_key(|(_, o)| o.call);
            for (i, o) in around.into_iter().take(150) {
                eprintln!("  #{i}: {o:?}");
            }
            panic!("history is not linearizable (deepest linearized prefix: {deepest} operations)");
        }
        Verdict::GaveUp { steps } => panic!("the checker gave up after {steps} steps"),
    }
    for child in restarted {
        meta_cluster::reap(child);
    }
}

fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Linearizable(_) => "linearizable",
        Verdict::NotLinearizable { .. } => "NOT linearizable",
        Verdict::GaveUp { .. } => "gave up",
    }
}

// ---------------------------------------------------------------------------
// The model and the checker together, on hand-made histories.

#[cfg(test)]
mod model_tests {
    use super::*;

    fn op(input: NsIn, output: Option<NsOut>, call: u64, ret: u64) -> Operation<NsIn, NsOut> {
        Operation { client: 0, input, output, call, ret: output.map(|_| ret) }
    }

    fn verdict(h: &[Operation<NsIn, NsOut>]) -> bool {
        check(&Namespace { created: created_inos(h) }, h, 1_000_000).is_linearizable()
    }

    const A: usize = 0;
    const B: usize = 1;

    #[test]
    fn rename_moves_the_file_and_replaces_the_target() {
        let h = [
            op(NsIn::Create { name: A, op: 0 }, Some(NsOut::Ino(10)), 0, 1),
            op(NsIn::Create { name: B, op: 1 }, Some(NsOut::Ino(11)), 2, 3),
            op(NsIn::Rename { from: A, to: B }, Some(NsOut::Done), 4, 5),
            op(NsIn::Lookup { name: B }, Some(NsOut::Ino(10)), 6, 7),
            op(NsIn::Lookup { name: A }, Some(NsOut::NotFound), 8, 9),
        ];
        assert!(verdict(&h));
        let mut stale = h.clone();
        stale[3].output = Some(NsOut::Ino(11));
        assert!(!verdict(&stale), "the replaced file is gone");
    }

    #[test]
    fn an_acknowledged_create_is_not_lost() {
        let h = [
            op(NsIn::Create { name: A, op: 0 }, Some(NsOut::Ino(10)), 0, 1),
            op(NsIn::Lookup { name: A }, Some(NsOut::NotFound), 2, 3),
        ];
        assert!(!verdict(&h));
    }

    #[test]
    fn a_failed_exclusive_create_changes_nothing() {
        let h = [
            op(NsIn::Create { name: A, op: 0 }, Some(NsOut::Ino(10)), 0, 1),
            op(NsIn::Create { name: A, op: 1 }, Some(NsOut::Exists), 2, 3),
            op(NsIn::Lookup { name: A }, Some(NsOut::Ino(10)), 4, 5),
        ];
        assert!(verdict(&h));
        let h = [
            op(NsIn::Create { name: A, op: 0 }, Some(NsOut::Exists), 0, 1),
            op(NsIn::Lookup { name: A }, Some(NsOut::NotFound), 2, 3),
        ];
        assert!(!verdict(&h), "EEXIST on an empty directory");
    }

    #[test]
    fn an_unknown_create_may_appear_with_an_unseen_inode() {
        let h = [
            op(NsIn::Create { name: A, op: 0 }, None, 0, 1),
            op(NsIn::Lookup { name: A }, Some(NsOut::NotFound), 2, 3),
            op(NsIn::Lookup { name: A }, Some(NsOut::Ino(42)), 4, 5),
            op(NsIn::Lookup { name: A }, Some(NsOut::Ino(42)), 6, 7),
        ];
        assert!(verdict(&h));
        let mut changed = h.clone();
        changed[3].output = Some(NsOut::Ino(43));
        assert!(!verdict(&changed), "one create makes one inode");
        // An inode some other create returned is not the lost create's.
        let h = [
            op(NsIn::Create { name: A, op: 0 }, None, 0, 1),
            op(NsIn::Create { name: B, op: 1 }, Some(NsOut::Ino(42)), 2, 3),
            op(NsIn::Lookup { name: A }, Some(NsOut::Ino(42)), 4, 5),
        ];
        assert!(!verdict(&h));
    }

    #[test]
    fn concurrent_renames_pick_one_order() {
        // a→b and b→a at once, starting from a only: exactly one of them finds
        // its source; both "Done" is impossible unless one ran after the other.
        let base = [op(NsIn::Create { name: A, op: 0 }, Some(NsOut::Ino(10)), 0, 1)];
        let both_done = [
            op(NsIn::Rename { from: A, to: B }, Some(NsOut::Done), 10, 20),
            op(NsIn::Rename { from: B, to: A }, Some(NsOut::Done), 10, 20),
            op(NsIn::Lookup { name: A }, Some(NsOut::Ino(10)), 30, 31),
        ];
        let h: Vec<_> = base.iter().chain(both_done.iter()).cloned().collect();
        assert!(verdict(&h));
        let mut bad = h.clone();
        bad[3].output = Some(NsOut::NotFound);
        bad.push(op(NsIn::Lookup { name: B }, Some(NsOut::NotFound), 40, 41));
        assert!(!verdict(&bad), "the file vanished");
    }
}
