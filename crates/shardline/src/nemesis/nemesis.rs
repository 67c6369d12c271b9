//! Carrying out the schedule: each fault starts at its offset into the run
//! and is undone when it ends; servers that exit on their own are recorded
//! (a failed check) and restarted. At the end every fault still active is
//! undone: links opened, paused servers continued, killed ones restarted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, RunState};
use crate::mount::Mount;
use crate::proxy::Mode;
use crate::schedule::{Event, Fault};
use crate::topology::Node;

enum Undo {
    Restart(Node),
    Resume(Node),
    Open(Vec<usize>),
    Remount,
    /// Healthy disk again.
    Disk(Node),
    /// Clock back to the real one.
    Clock(Node),
    /// Start the wiped metadata server empty and add it back (once it is
    /// out of the cluster: an empty server must never come back under an
    /// identity a quorum may have counted).
    Rejoin(u64),
    /// Done at once, nothing to undo.
    Done,
    Nothing,
}

struct Active {
    ends: Instant,
    undo: Undo,
    /// The servers it impairs, for the guard against too many at once.
    impairs: Vec<Node>,
}

/// An event that could not start within this long of its time (the loop
/// was busy, e.g. adding a wiped server back) is skipped, not bunched up
/// with the ones after it.
const LATE: Duration = Duration::from_secs(5);

/// What the nemesis did and saw.
#[derive(Debug, Default)]
pub struct NemesisReport {
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Servers that exited without being killed: (server, how, log tail).
    pub unexpected_exits: Vec<(String, String, String)>,
    /// Faults that could not be carried out (e.g. no leader to kill).
    pub skipped: u64,
    /// Steps of faults that failed (a wiped server not added back...).
    pub errors: Vec<String>,
}

pub struct Nemesis<'a> {
    pub cluster: &'a mut Cluster,
    pub mount: Option<&'a mut Mount>,
    active: Vec<Active>,
    pub report: NemesisReport,
    verbose: bool,
    /// Wiped metadata servers already removed from the cluster.
    removed: std::collections::BTreeSet<u64>,
}

impl<'a> Nemesis<'a> {
    pub fn new(cluster: &'a mut Cluster, mount: Option<&'a mut Mount>, verbose: bool) -> Self {
        Nemesis {
            cluster,
            mount,
            active: Vec::new(),
            report: NemesisReport::default(),
            verbose,
            removed: Default::default(),
        }
    }

    /// Run `events` from `t0`, returning once the last has started and the
    /// schedule's `duration` has passed. `tick` is called every loop.
    pub fn run(&mut self, events: &[Event], t0: Instant, duration: Duration, mut tick: impl FnMut()) {
        let mut next = 0;
        while t0.elapsed() < duration {
            while next < events.len() && t0.elapsed() >= events[next].at {
                let e = &events[next];
                next += 1;
                self.start(e, t0);
            }
            let now = Instant::now();
            let (due, keep): (Vec<Active>, Vec<Active>) = self.active.drain(..).partition(|a| a.ends <= now);
            self.active = keep;
            for a in due {
                self.undo(a.undo);
            }
            self.check_exits();
            tick();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn note(&self, t0: Instant, what: String) {
        if self.verbose {
            println!("[{:>7.1}s] {what}", t0.elapsed().as_secs_f64());
        }
    }

    fn start(&mut self, e: &Event, t0: Instant) {
        let topo = self.cluster.topo.clone();
        // The schedule keeps a quorum and k shards; carrying it out late
        // (the loop was held up) must not break that: check what is active
        // now, and skip late events.
        let impairs = e.fault.impairs(&topo);
        let busy: std::collections::BTreeSet<Node> = self.active.iter().flat_map(|a| a.impairs.clone()).collect();
        if t0.elapsed() > e.at + LATE || !crate::schedule::allowed(&impairs, &busy) {
            self.report.skipped += 1;
            self.note(t0, format!("skipped {:?} (late, or too much impaired already)", e.fault));
            return;
        }
        let undo = match &e.fault {
            Fault::Kill(n) => {
                if self.cluster.state(*n) != RunState::Running {
                    Undo::Nothing
                } else {
                    self.cluster.kill(*n);
                    Undo::Restart(*n)
                }
            }
            Fault::KillLeader => match self.cluster.leader() {
                Some(id) if self.cluster.state(Node::Meta(id)) == RunState::Running => {
                    self.cluster.kill(Node::Meta(id));
                    Undo::Restart(Node::Meta(id))
                }
                _ => Undo::Nothing,
            },
            Fault::Pause(n) => {
                self.cluster.pause(*n);
                Undo::Resume(*n)
            }
            Fault::Isolate(n) => {
                let links = topo.links_of(*n);
                self.cluster.set_mode(&links, Mode::Cut);
                Undo::Open(links)
            }
            Fault::PartitionMeta(i) => {
                let links: Vec<usize> = (1..=topo.metas)
                    .filter(|j| j != i)
                    .flat_map(|j| topo.links_between(Node::Meta(*i), Node::Meta(j)))
                    .collect();
                self.cluster.set_mode(&links, Mode::Cut);
                Undo::Open(links)
            }
            Fault::OneWay { link, dir, discard } => {
                let mode = if *discard { Mode::Discard(*dir) } else { Mode::Stall(*dir) };
                self.cluster.set_mode(&[*link], mode);
                Undo::Open(vec![*link])
            }
            Fault::Delay { node, ms } => {
                let links = topo.links_of(*node);
                self.cluster.set_mode(&links, Mode::Delay(*ms));
                Undo::Open(links)
            }
            Fault::Blackhole(a, b) => {
                let links = topo.links_between(*a, *b);
                self.cluster.set_mode(&links, Mode::Blackhole);
                Undo::Open(links)
            }
            Fault::KillMount => match self.mount.as_mut() {
                Some(m) => {
                    m.kill();
                    Undo::Remount
                }
                None => Undo::Nothing,
            },
            Fault::Disk { node, mode } => {
                self.cluster.set_disk_fault(*node, mode);
                Undo::Disk(*node)
            }
            Fault::BitRot { node, seed } => {
                let n = self.cluster.bit_rot(*node, *seed, 3);
                self.note(t0, format!("flipped bits in {n} shards of {node}"));
                Undo::Done
            }
            Fault::WipeData(n) => {
                self.cluster.kill(*n);
                self.cluster.wipe(*n);
                Undo::Restart(*n)
            }
            Fault::WipeMeta(i) => {
                let n = Node::Meta(*i);
                // A wipe loses a replica for good until it rejoins: while
                // another wiped server has not rejoined, a second would take
                // a 3-server group past the one loss it survives.
                let rejoining =
                    self.cluster.join.iter().any(|j| matches!(j, Node::Meta(_))) || !self.removed.is_empty();
                if self.cluster.state(n) != RunState::Running || rejoining {
                    Undo::Nothing
                } else {
                    self.cluster.kill(n);
                    self.cluster.wipe(n);
                    self.cluster.join.insert(n);
                    let id = i.to_string();
                    if let Err(e) =
                        self.cluster.admin_until_ok(&["admin", "meta", "remove", "--id", &id], Duration::from_secs(20))
                    {
                        eprintln!("nemesis: remove wiped meta-{i} (retried when it rejoins): {e:#}");
                    } else {
                        self.removed.insert(*i);
                    }
                    Undo::Rejoin(*i)
                }
            }
            Fault::ClockJump { node, secs } => {
                if self.cluster.clock_enabled(*node) {
                    self.cluster.set_clock(*node, *secs);
                    Undo::Clock(*node)
                } else {
                    Undo::Nothing
                }
            }
        };
        if matches!(undo, Undo::Nothing) {
            self.report.skipped += 1;
            self.note(t0, format!("skipped {:?}", e.fault));
            return;
        }
        *self.report.faults.entry(e.fault.kind()).or_default() += 1;
        self.note(t0, format!("start {:?} for {:.1}s", e.fault, e.lasts.as_secs_f64()));
        self.active.push(Active { ends: Instant::now() + e.lasts, undo, impairs });
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Restart(n) => {
                if self.cluster.state(n) == RunState::Down {
                    if let Err(e) = self.cluster.start(n) {
                        eprintln!("nemesis: restart {n}: {e:#}");
                    }
                }
            }
            Undo::Resume(n) => self.cluster.resume(n),
            Undo::Open(links) => self.cluster.set_mode(&links, Mode::Open),
            Undo::Remount => {
                if let Some(m) = self.mount.as_mut() {
                    if let Err(e) = m.start() {
                        eprintln!("nemesis: remount: {e:#}");
                    }
                }
            }
            Undo::Disk(n) => self.cluster.set_disk_fault(n, "none"),
            Undo::Clock(n) => self.cluster.set_clock(n, 0),
            Undo::Rejoin(i) => {
                let n = Node::Meta(i);
                if !self.removed.contains(&i) {
                    let id = i.to_string();
                    match self
                        .cluster
                        .admin_until_ok(&["admin", "meta", "remove", "--id", &id], Duration::from_secs(60))
                    {
                        Ok(()) => {
                            self.removed.insert(i);
                        }
                        Err(e) => {
                            // Still a member: starting it empty would be unsafe.
                            let msg = format!("wiped meta-{i} could not be removed, left down: {e:#}");
                            eprintln!("nemesis: {msg}");
                            self.report.errors.push(msg);
                            return;
                        }
                    }
                }
                if self.cluster.state(n) == RunState::Down {
                    if let Err(e) = self.cluster.start(n) {
                        eprintln!("nemesis: restart {n}: {e:#}");
                    }
                }
                let (id, addr) = (i.to_string(), self.cluster.listen[&n].clone());
                let add = ["admin", "meta", "add", "--id", &id, "--addr", &addr];
                match self.cluster.admin_until_ok(&add, Duration::from_secs(60)) {
                    Ok(()) => {
                        self.cluster.join.remove(&n);
                        self.removed.remove(&i);
                    }
                    Err(e) => {
                        let msg = format!("add wiped meta-{i} back: {e:#}");
                        eprintln!("nemesis: {msg}");
                        self.report.errors.push(msg);
                    }
                }
            }
            Undo::Done | Undo::Nothing => {}
        }
    }

    /// Record servers that exited on their own, and restart them.
    pub fn check_exits(&mut self) {
        for (n, how) in self.cluster.unexpected_exits() {
            let tail = self.cluster.log_tail(n, 20);
            eprintln!("nemesis: {n} exited on its own ({how}); last log lines:\n{tail}");
            self.report.unexpected_exits.push((n.to_string(), how, tail));
            if let Err(e) = self.cluster.start(n) {
                eprintln!("nemesis: restart {n}: {e:#}");
            }
        }
    }

    /// Undo every active fault and bring every server and link back.
    pub fn heal_all(&mut self) {
        for a in std::mem::take(&mut self.active) {
            self.undo(a.undo);
        }
        self.cluster.heal_network();
        for n in self.cluster.topo.servers() {
            match self.cluster.state(n) {
                RunState::Paused => self.cluster.resume(n),
                // A wiped metadata server that could not be removed stays
                // down (see Undo::Rejoin).
                RunState::Down if self.cluster.join.contains(&n) => {}
                RunState::Down => {
                    if let Err(e) = self.cluster.start(n) {
                        eprintln!("nemesis: restart {n}: {e:#}");
                    }
                }
                RunState::Running => {}
            }
        }
        if let Some(m) = self.mount.as_mut() {
            if !m.running() {
                if let Err(e) = m.start() {
                    eprintln!("nemesis: remount: {e:#}");
                }
            }
        }
    }
}
