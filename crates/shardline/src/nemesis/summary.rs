//! The run's one summary: faults by kind, operations, the checkers'
//! verdicts, time to heal, and the seed that replays it. Printed as text,
//! and as one JSON line (`--json`) for scripts and `tests/nemesis.rs`.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub seed: String,
    pub profile: String,
    pub fault_seconds: f64,
    pub schedule_digest: String,
    pub faults: BTreeMap<String, u64>,
    pub faults_skipped: u64,
    pub writes_acked: u64,
    pub writes_failed: u64,
    pub reads_checked: u64,
    pub reads_failed: u64,
    pub bytes_checked: u64,
    pub namespace_ops: u64,
    pub namespace_unknown: u64,
    pub mount: bool,
    /// Acknowledged writes whose bytes are gone or replaced at the end.
    pub acked_writes_lost: u64,
    /// Files that must exist and could not be read at the end.
    pub files_unreadable: u64,
    /// Reads (during the run or at the end) that returned bytes no write
    /// put at that offset.
    pub wrong_reads: u64,
    /// Reads that returned an overwritten version, or missed bytes or a
    /// file an acknowledged write had put there.
    pub stale_reads: u64,
    /// Committed chunks whose shards were looked for after the heal, and
    /// shards missing from the servers their groups name.
    pub chunks_checked: u64,
    pub shards_missing: u64,
    pub linearizability: String,
    pub linearizable: bool,
    pub heal_seconds: Option<f64>,
    pub heal_bound_seconds: f64,
    pub unexpected_exits: Vec<String>,
    pub problems: Vec<String>,
    pub pass: bool,
    pub replay: String,
}

impl Summary {
    pub fn judge(&mut self) {
        if self.acked_writes_lost > 0 {
            self.problems.push(format!("{} acknowledged writes lost", self.acked_writes_lost));
        }
        if self.files_unreadable > 0 {
            self.problems.push(format!("{} files unreadable at the end", self.files_unreadable));
        }
        if self.wrong_reads > 0 {
            self.problems.push(format!("{} reads returned bytes never written", self.wrong_reads));
        }
        if self.stale_reads > 0 {
            self.problems.push(format!("{} reads returned stale or missing bytes", self.stale_reads));
        }
        if self.shards_missing > 0 {
            self.problems
                .push(format!("{} shards missing after the heal (redundancy not restored)", self.shards_missing));
        }
        if !self.linearizable {
            self.problems.push(format!("namespace history: {}", self.linearizability));
        }
        if self.heal_seconds.is_none() {
            self.problems.push(format!("not healthy within {} s after the faults", self.heal_bound_seconds));
        }
        if !self.unexpected_exits.is_empty() {
            self.problems.push(format!("servers exited on their own: {}", self.unexpected_exits.join("; ")));
        }
        self.pass = self.problems.is_empty();
    }

    pub fn print(&self) {
        println!("==== nemesis summary ====");
        println!("seed            {} (profile {}, {:.0} s of faults)", self.seed, self.profile, self.fault_seconds);
        let faults: Vec<String> = self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let total: u64 = self.faults.values().sum();
        println!("faults          {total}: {} ({} skipped)", faults.join(", "), self.faults_skipped);
        println!(
            "operations      writes {} acked / {} failed; reads {} checked / {} failed ({} bytes checked); namespace {} ({} unknown){}",
            self.writes_acked,
            self.writes_failed,
            self.reads_checked,
            self.reads_failed,
            self.bytes_checked,
            self.namespace_ops,
            self.namespace_unknown,
            if self.mount { "; with a FUSE mount" } else { "; no FUSE mount" }
        );
        println!("acked lost      {} (files unreadable: {})", self.acked_writes_lost, self.files_unreadable);
        println!("wrong reads     {} (stale reads: {})", self.wrong_reads, self.stale_reads);
        println!("linearizable    {}", self.linearizability);
        println!(
            "redundancy      {} shards missing in {} chunks after the heal",
            self.shards_missing, self.chunks_checked
        );
        match self.heal_seconds {
            Some(s) => println!("time to heal    {s:.1} s (bound {:.0} s)", self.heal_bound_seconds),
            None => println!("time to heal    NOT HEALED within {:.0} s", self.heal_bound_seconds),
        }
        println!("server exits    {} unexpected", self.unexpected_exits.len());
        for p in &self.problems {
            println!("PROBLEM         {p}");
        }
        println!("result          {}", if self.pass { "PASS" } else { "FAIL" });
        println!("replay          {}", self.replay);
    }
}
