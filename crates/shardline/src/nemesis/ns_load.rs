//! The namespace workload: clients (each its own native client, so its own
//! client id) create, unlink, rename, hard-link, mkdir, rmdir and look up a
//! few names, recording when each operation was invoked and completed and
//! what it returned. A group's clients share one directory per 20 s epoch
//! (`/nemesis/ns<group>-<epoch>`), so each directory's history is small and
//! checked on its own, as Jepsen checks independent keys. At the end a
//! final lookup of every name closes each history, which must then pass the
//! Wing–Gong checker against [`crate::ns_model::Namespace`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardline_client::inode_api::NewFile;
use shardline_client::{Client, ClientError};
use shardline_rpc::MetaCallError;
use shardline_types::ErrorCode;

use crate::linearizability::{check, Operation, Verdict};
use crate::ns_model::{Namespace, NsIn, NsOut, DIRS, FILES, NAMES};

pub const EPOCH: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Rec {
    pub client: usize,
    pub input: NsIn,
    pub output: Option<NsOut>,
    pub call: u64,
    pub ret: Option<u64>,
}

/// Every directory's history: (group, epoch) → operations.
#[derive(Default)]
pub struct Histories {
    pub dirs: Mutex<BTreeMap<(usize, u64), Vec<Rec>>>,
    /// Each directory's inode number.
    pub inos: Mutex<BTreeMap<(usize, u64), u64>>,
}

pub fn dir_name(group: usize, epoch: u64) -> String {
    format!("ns{group}-{epoch}")
}

fn outcome<T>(r: Result<T, ClientError>, ok: impl FnOnce(T) -> NsOut) -> Option<NsOut> {
    match r {
        Ok(v) => Some(ok(v)),
        Err(ClientError::Meta(MetaCallError::Service { code: ErrorCode::NotFound, .. })) => Some(NsOut::NotFound),
        Err(ClientError::Meta(MetaCallError::Service { code: ErrorCode::AlreadyExists, .. })) => Some(NsOut::Exists),
        Err(_) => None,
    }
}

fn ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// One client of `group` until `stop`.
pub async fn worker(
    client: Client,
    group: usize,
    id: usize,
    seed: u64,
    t0: Instant,
    h: Arc<Histories>,
    stop: Arc<AtomicBool>,
) {
    let inodes = client.inodes();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4e5 ^ ((group as u64) << 8) ^ id as u64);
    while !stop.load(Ordering::Relaxed) {
        let epoch = t0.elapsed().as_secs() / EPOCH.as_secs();
        let Some(dir) = h.inos.lock().unwrap_or_else(|e| e.into_inner()).get(&(group, epoch)).copied() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let file = rng.gen_range(0..FILES.len());
        let dirn = FILES.len() + rng.gen_range(0..DIRS.len());
        let roll = rng.gen_range(0..100);
        let call = ns(t0);
        let (input, output) = match roll {
            0..=24 => {
                let name = if rng.gen_bool(0.7) { file } else { dirn };
                (NsIn::Lookup { name }, outcome(inodes.lookup(dir, name_of(name)).await, |a| NsOut::Ino(a.ino)))
            }
            25..=44 => {
                let r = inodes.create(NewFile::new(dir, FILES[file])).await;
                (NsIn::Create { name: file, op: 0 }, outcome(r, |a| NsOut::Ino(a.ino)))
            }
            45..=56 => (NsIn::Unlink { name: file }, outcome(inodes.unlink(dir, FILES[file]).await, |_| NsOut::Done)),
            57..=69 => {
                let to = rng.gen_range(0..FILES.len());
                let r = inodes.rename(dir, FILES[file], dir, FILES[to]).await;
                (NsIn::Rename { from: file, to }, outcome(r, |_| NsOut::Done))
            }
            70..=79 => {
                // Learn an inode (recorded as a lookup), then link it.
                let got = outcome(inodes.lookup(dir, FILES[file]).await, |a| NsOut::Ino(a.ino));
                push(
                    &h,
                    group,
                    epoch,
                    Rec { client: id, input: NsIn::Lookup { name: file }, output: got, call, ret: Some(ns(t0)) },
                );
                let Some(NsOut::Ino(ino)) = got else { continue };
                let to = rng.gen_range(0..FILES.len());
                let call = ns(t0);
                let r = outcome(inodes.link(ino, dir, FILES[to]).await, |a| NsOut::Ino(a.ino));
                push(
                    &h,
                    group,
                    epoch,
                    Rec { client: id, input: NsIn::Link { ino, to }, output: r, call, ret: Some(ns(t0)) },
                );
                continue;
            }
            80..=87 => {
                let r = inodes.mkdir(dir, name_of(dirn), 0o755, 0, 0).await;
                (NsIn::Mkdir { name: dirn, op: 0 }, outcome(r, |a| NsOut::Ino(a.ino)))
            }
            88..=94 => (NsIn::Rmdir { name: dirn }, outcome(inodes.rmdir(dir, name_of(dirn)).await, |_| NsOut::Done)),
            _ => {
                let to = FILES.len() + rng.gen_range(0..DIRS.len());
                let r = inodes.rename(dir, name_of(dirn), dir, name_of(to)).await;
                (NsIn::Rename { from: dirn, to }, outcome(r, |_| NsOut::Done))
            }
        };
        push(&h, group, epoch, Rec { client: id, input, output, call, ret: Some(ns(t0)) });
        tokio::time::sleep(Duration::from_millis(rng.gen_range(10..30))).await;
    }
}

pub fn name_of(i: usize) -> &'static str {
    if i < FILES.len() {
        FILES[i]
    } else {
        DIRS[i - FILES.len()]
    }
}

fn push(h: &Histories, group: usize, epoch: u64, r: Rec) {
    h.dirs.lock().unwrap_or_else(|e| e.into_inner()).entry((group, epoch)).or_default().push(r);
}

/// After the faults: look up every name of every directory once more
/// (retrying until it answers), closing each history.
pub async fn final_lookups(client: &Client, t0: Instant, h: &Histories) -> Result<(), String> {
    let inodes = client.inodes();
    let dirs: Vec<((usize, u64), u64)> = h.inos.lock().unwrap_or_else(|e| e.into_inner()).clone().into_iter().collect();
    let used: Vec<(usize, u64)> = h.dirs.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
    for ((group, epoch), dir) in dirs.into_iter().filter(|(k, _)| used.contains(k)) {
        for name in 0..NAMES {
            let mut tries = 0;
            loop {
                let call = ns(t0);
                let out = outcome(inodes.lookup(dir, name_of(name)).await, |a| NsOut::Ino(a.ino));
                if out.is_some() {
                    push(
                        h,
                        group,
                        epoch,
                        Rec { client: usize::MAX, input: NsIn::Lookup { name }, output: out, call, ret: Some(ns(t0)) },
                    );
                    break;
                }
                tries += 1;
                if tries > 50 {
                    return Err(format!("final lookup in {} never answered", dir_name(group, epoch)));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// The verdict over every directory's history.
#[derive(Debug, Default)]
pub struct LinReport {
    pub histories: usize,
    pub operations: usize,
    pub unknown: usize,
    pub failed: Vec<String>,
    pub failed_dirs: Vec<(usize, u64)>,
    pub gave_up: usize,
}

/// Write the history of directory (group, epoch) to `path`, one
/// operation a line in invocation order (times in ms), for a post-mortem.
pub fn dump(h: &Histories, group: usize, epoch: u64, path: &std::path::Path) {
    let dirs = h.dirs.lock().unwrap_or_else(|e| e.into_inner());
    let Some(recs) = dirs.get(&(group, epoch)) else { return };
    let mut recs = recs.clone();
    recs.sort_by_key(|r| r.call);
    let ms = |t: u64| t as f64 / 1e6;
    let text: String = recs
        .iter()
        .map(|r| {
            let ret = r.ret.map_or("-".to_string(), |t| format!("{:.3}", ms(t)));
            format!("{:.3} {ret} client {} {:?} -> {:?}\n", ms(r.call), r.client, r.input, r.output)
        })
        .collect();
    let _ = std::fs::write(path, text);
}

pub fn check_all(h: &Histories, max_steps: u64) -> LinReport {
    let dirs = h.dirs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut rep = LinReport::default();
    for ((group, epoch), recs) in dirs {
        rep.histories += 1;
        rep.operations += recs.len();
        let mut ops = Vec::with_capacity(recs.len());
        let mut created = std::collections::HashSet::new();
        for (i, r) in recs.iter().enumerate() {
            let input = match r.input {
                NsIn::Create { name, .. } => NsIn::Create { name, op: i },
                NsIn::Mkdir { name, .. } => NsIn::Mkdir { name, op: i },
                other => other,
            };
            if let (NsIn::Create { .. } | NsIn::Mkdir { .. }, Some(NsOut::Ino(ino))) = (input, r.output) {
                created.insert(ino);
            }
            // An unknown outcome may take effect at any time after its call.
            let ret = if r.output.is_some() { r.ret } else { None };
            if r.output.is_none() {
                rep.unknown += 1;
            }
            ops.push(Operation { client: r.client, input, output: r.output, call: r.call, ret });
        }
        match check(&Namespace { created }, &ops, max_steps) {
            Verdict::Linearizable(_) => {}
            Verdict::GaveUp { .. } => rep.gave_up += 1,
            Verdict::NotLinearizable { stuck, .. } => {
                let around: Vec<String> = stuck.iter().take(4).map(|&i| format!("{:?}", recs[i])).collect();
                rep.failed.push(format!("{}: not linearizable near {}", dir_name(group, epoch), around.join("; ")));
                rep.failed_dirs.push((group, epoch));
            }
        }
    }
    rep
}
