//! The fault schedule: a pure function of (seed, profile, topology), so a
//! printed seed replays the same faults at the same offsets into the run.
//!
//! Faults overlap, within limits that keep the cluster able to make
//! progress most of the time (as Jepsen's nemeses do): at most one
//! metadata server impaired at a time (a quorum of three survives), at most
//! two data servers (any k of k+m = k+2 shards still read), and at most
//! `max_concurrent` faults in all.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::proxy::Dir;
use crate::topology::{Node, Topology};

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the server; restart it when the fault ends.
    Kill(Node),
    /// SIGKILL whichever metadata server leads when the fault starts.
    KillLeader,
    /// SIGSTOP the server; SIGCONT when the fault ends (longer than the
    /// failure timeouts: it is declared dead, then comes back).
    Pause(Node),
    /// Cut every link into and out of the node.
    Isolate(Node),
    /// Cut one metadata server off from the other metadata servers only
    /// (clients and data servers still reach it).
    PartitionMeta(u64),
    /// One direction of one link stalls (nothing lost) or discards bytes.
    OneWay { link: usize, dir: Dir, discard: bool },
    /// Every link of the node delays each read this long.
    Delay { node: Node, ms: u64 },
    /// Both links between two nodes swallow everything (nothing lost).
    Blackhole(Node, Node),
    /// SIGKILL the mount process; remount when the fault ends.
    KillMount,
    /// The data server's disk fails this way (`fault_store.rs`: eio,
    /// enospc, fsync-fail, read-flip) until the fault ends.
    Disk { node: Node, mode: &'static str },
    /// Bits flipped at rest in a few of the data server's stored shards
    /// (chosen by `seed`); scrub or degraded reads must cope.
    BitRot { node: Node, seed: u64 },
    /// SIGKILL the data server and wipe its folder; a replacement with the
    /// same identity and an empty disk starts when the fault ends.
    WipeData(Node),
    /// SIGKILL the metadata server, wipe its folder and remove it from the
    /// cluster; it rejoins empty (`--join`, `admin meta add`) at the end.
    WipeMeta(u64),
    /// The server's wall clock jumps by `secs` (libfaketime), back at the end.
    ClockJump { node: Node, secs: i64 },
}

impl Fault {
    /// The fault's kind, for the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(Node::Meta(_)) => "kill-meta",
            Fault::Kill(_) => "kill-data",
            Fault::KillLeader => "kill-leader",
            Fault::Pause(_) => "pause",
            Fault::Isolate(_) => "isolate",
            Fault::PartitionMeta(_) => "partition-meta",
            Fault::OneWay { discard: false, .. } => "one-way-stall",
            Fault::OneWay { discard: true, .. } => "one-way-drop",
            Fault::Delay { .. } => "delay",
            Fault::Blackhole(..) => "blackhole",
            Fault::KillMount => "kill-mount",
            Fault::Disk { mode, .. } => match *mode {
                "eio" => "disk-eio",
                "enospc" => "disk-enospc",
                "fsync-fail" => "disk-fsync-fail",
                _ => "disk-read-flip",
            },
            Fault::BitRot { .. } => "bit-rot",
            Fault::WipeData(_) => "wipe-data",
            Fault::WipeMeta(_) => "wipe-meta",
            Fault::ClockJump { .. } => "clock-jump",
        }
    }

    /// The servers it impairs (KillLeader: some metadata server, unknown
    /// until it starts; counted as meta-0).
    pub fn impairs(&self, topo: &Topology) -> Vec<Node> {
        match self {
            Fault::Kill(n)
            | Fault::Pause(n)
            | Fault::Isolate(n)
            | Fault::Delay { node: n, .. }
            | Fault::Disk { node: n, .. }
            | Fault::BitRot { node: n, .. }
            | Fault::WipeData(n)
            | Fault::ClockJump { node: n, .. } => vec![*n],
            Fault::WipeMeta(i) => vec![Node::Meta(*i)],
            Fault::KillLeader => vec![Node::Meta(0)],
            Fault::PartitionMeta(i) => vec![Node::Meta(*i)],
            Fault::OneWay { link, .. } => {
                let l = topo.links[*link];
                [l.from, l.to].into_iter().filter(|n| n.is_server()).collect()
            }
            Fault::Blackhole(a, b) => vec![*a, *b],
            Fault::KillMount => vec![Node::Mount],
        }
    }
}

/// A fault and when it starts and ends, from the start of the fault phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Duration,
    pub lasts: Duration,
    pub fault: Fault,
}

/// How hard and how long to push.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub duration: Duration,
    /// Gap between fault starts, in milliseconds (uniform).
    pub gap_ms: (u64, u64),
    pub max_concurrent: usize,
    /// Whether a mount runs (KillMount is drawn only then).
    pub mount: bool,
}

/// The schedule for `seed`.
pub fn schedule(seed: u64, spec: &ScheduleSpec, topo: &Topology) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut events: Vec<Event> = Vec::new();
    let mut t = Duration::from_millis(rng.gen_range(1000..3000));
    while t < spec.duration {
        let active: Vec<&Event> = events.iter().filter(|e| e.at + e.lasts > t).collect();
        if active.len() < spec.max_concurrent {
            let busy: BTreeSet<Node> = active.iter().flat_map(|e| e.fault.impairs(topo)).collect();
            for _ in 0..10 {
                let (fault, lasts) = draw(&mut rng, topo, spec);
                if allowed(&fault.impairs(topo), &busy) {
                    let lasts = lasts.min(spec.duration - t);
                    events.push(Event { at: t, lasts, fault });
                    break;
                }
            }
        }
        t += Duration::from_millis(rng.gen_range(spec.gap_ms.0..=spec.gap_ms.1));
    }
    events
}

/// Whether a fault impairing `new` may start while `busy` are impaired.
pub fn allowed(new: &[Node], busy: &BTreeSet<Node>) -> bool {
    let metas = |it: &mut dyn Iterator<Item = &Node>| it.filter(|n| matches!(n, Node::Meta(_))).count();
    let datas = |it: &mut dyn Iterator<Item = &Node>| it.filter(|n| matches!(n, Node::Data(_))).count();
    if new.iter().any(|n| busy.contains(n)) {
        return false;
    }
    metas(&mut busy.iter().chain(new)) <= 1 && datas(&mut busy.iter().chain(new)) <= 2
}

fn ms(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi))
}

fn draw(rng: &mut StdRng, topo: &Topology, spec: &ScheduleSpec) -> (Fault, Duration) {
    let meta = |rng: &mut StdRng| Node::Meta(rng.gen_range(1..=topo.metas));
    let data = |rng: &mut StdRng| Node::Data(rng.gen_range(1..=topo.datas));
    let server = |rng: &mut StdRng| if rng.gen_bool(0.4) { meta(rng) } else { data(rng) };
    loop {
        let roll = rng.gen_range(0..100);
        return match roll {
            // Restarted before (1 s) or after (8 s) the 3 s failure timeout.
            0..=13 => (Fault::Kill(server(rng)), ms(rng, 500, 8000)),
            14..=19 => (Fault::KillLeader, ms(rng, 500, 6000)),
            20..=29 => (Fault::Pause(server(rng)), ms(rng, 4000, 9000)),
            30..=40 => (Fault::Isolate(server(rng)), ms(rng, 2000, 12000)),
            41..=46 => (Fault::PartitionMeta(rng.gen_range(1..=topo.metas)), ms(rng, 2000, 10000)),
            47..=57 => {
                let link = rng.gen_range(0..topo.links.len());
                let dir = if rng.gen_bool(0.5) { Dir::Forward } else { Dir::Backward };
                (Fault::OneWay { link, dir, discard: rng.gen_bool(0.5) }, ms(rng, 2000, 10000))
            }
            58..=66 => {
                let ms_delay = *[20u64, 50, 100, 300, 1000].get(rng.gen_range(0..5)).unwrap_or(&50);
                (Fault::Delay { node: server(rng), ms: ms_delay }, ms(rng, 3000, 12000))
            }
            67..=74 => {
                let a = server(rng);
                let b = meta(rng);
                if a == b {
                    continue;
                }
                (Fault::Blackhole(a, b), ms(rng, 2000, 10000))
            }
            75..=81 => {
                let mode = ["eio", "enospc", "fsync-fail", "read-flip"][rng.gen_range(0..4)];
                (Fault::Disk { node: data(rng), mode }, ms(rng, 2000, 10000))
            }
            82..=85 => (Fault::BitRot { node: data(rng), seed: rng.gen() }, ms(rng, 20000, 40000)),
            86..=89 => (Fault::WipeData(data(rng)), ms(rng, 500, 8000)),
            90..=92 => (Fault::WipeMeta(rng.gen_range(1..=topo.metas)), ms(rng, 1000, 6000)),
            93..=95 => {
                let secs = [-600i64, -30, 30, 600, 3600][rng.gen_range(0..5)];
                (Fault::ClockJump { node: server(rng), secs }, ms(rng, 5000, 20000))
            }
            _ if spec.mount => (Fault::KillMount, ms(rng, 500, 4000)),
            _ => continue,
        };
    }
}

/// A short digest of a schedule, printed so runs can be compared.
pub fn digest(events: &[Event]) -> u64 {
    let text = format!("{events:?}");
    crc32c::crc32c(text.as_bytes()) as u64
}

/// The servers whose clocks the schedule jumps (they start under libfaketime).
pub fn clock_targets(events: &[Event]) -> BTreeSet<Node> {
    events
        .iter()
        .filter_map(|e| match e.fault {
            Fault::ClockJump { node, .. } => Some(node),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ScheduleSpec {
        ScheduleSpec { duration: Duration::from_secs(600), gap_ms: (2000, 6000), max_concurrent: 3, mount: true }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let topo = Topology::new(3, 6);
        let a = schedule(42, &spec(), &topo);
        assert_eq!(a, schedule(42, &spec(), &topo));
        assert_ne!(a, schedule(43, &spec(), &topo));
        assert!(a.len() > 50, "{} events", a.len());
    }

    #[test]
    fn overlapping_faults_leave_a_meta_quorum_and_k_data_shards() {
        let topo = Topology::new(3, 6);
        for seed in 0..50 {
            let ev = schedule(seed, &spec(), &topo);
            for e in &ev {
                let t = e.at;
                let active: Vec<&Event> = ev.iter().filter(|x| x.at <= t && x.at + x.lasts > t).collect();
                assert!(active.len() <= 3);
                let nodes: Vec<Node> = active.iter().flat_map(|x| x.fault.impairs(&topo)).collect();
                assert!(nodes.iter().filter(|n| matches!(n, Node::Meta(_))).count() <= 1, "seed {seed} at {t:?}");
                assert!(nodes.iter().filter(|n| matches!(n, Node::Data(_))).count() <= 2, "seed {seed} at {t:?}");
                assert!(e.at + e.lasts <= spec().duration);
            }
        }
    }

    #[test]
    fn every_kind_is_drawn() {
        let topo = Topology::new(3, 6);
        let ev = schedule(7, &ScheduleSpec { duration: Duration::from_secs(7200), ..spec() }, &topo);
        let kinds: BTreeSet<&str> = ev.iter().map(|e| e.fault.kind()).collect();
        for k in [
            "kill-meta",
            "kill-data",
            "kill-leader",
            "pause",
            "isolate",
            "partition-meta",
            "delay",
            "blackhole",
            "disk-eio",
            "disk-enospc",
            "disk-fsync-fail",
            "disk-read-flip",
            "bit-rot",
            "wipe-data",
            "wipe-meta",
            "clock-jump",
        ] {
            assert!(kinds.contains(k), "{k} missing from {kinds:?}");
        }
        assert!(kinds.contains("one-way-stall") && kinds.contains("one-way-drop") && kinds.contains("kill-mount"));
    }
}
