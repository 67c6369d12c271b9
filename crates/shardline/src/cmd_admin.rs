//! `shardline admin`: cluster operations.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;
use shardline_proto::v1 as pb;
use shardline_rpc::{MetaClient, Role};

use crate::cluster_file::ClusterFile;
use crate::cmd_moves::Switch;

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Metadata servers, data servers and placement-group health.
    Status {
        #[arg(long)]
        json: bool,
        /// First wait until every data server is up and every placement
        /// group healthy (exit non-zero, saying what is missing, on timeout).
        #[arg(long)]
        wait_healthy: bool,
        /// How long --wait-healthy waits, in seconds.
        #[arg(long, default_value_t = 60, requires = "wait_healthy")]
        timeout: u64,
    },
    /// Check every shard's CRC on every data server now; rebuild bad ones.
    /// `scrub status|start|stop`: whether scrubbing is stopped, resume it,
    /// stop it on every data server.
    #[command(args_conflicts_with_subcommands = true)]
    Scrub {
        #[command(subcommand)]
        command: Option<SwitchCmd>,
        #[arg(long)]
        json: bool,
    },
    /// Delete shards of chunk versions no file refers to any more.
    Gc {
        /// Leave shards younger than this alone (writes in flight).
        #[arg(long, default_value_t = 600_000)]
        grace_ms: u64,
        #[arg(long)]
        json: bool,
    },
    /// Add or remove metadata servers (Raft membership changes).
    Meta {
        #[command(subcommand)]
        command: MetaCmd,
    },
    /// The cluster CA: create it, issue certificates, revoke them.
    Certs {
        #[command(subcommand)]
        command: crate::certs::CertsCmd,
    },
    /// Every data server (each disk is one): failure domain, state, raw
    /// capacity, used, free and shards.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// Raw and usable capacity, per server and per failure domain, the
    /// largest file the cluster can still take, and failure domains whose
    /// loss could not be re-protected.
    Capacity {
        /// Erasure code to compute usable space for (default: the cluster's).
        #[arg(long)]
        ec: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Move every shard off data server NODE (reads and writes go on); it
    /// takes no new shards. Follows the drain until done; run it again to
    /// resume following after an interruption.
    Drain {
        node: u64,
        /// Take NODE back into placement instead.
        #[arg(long)]
        cancel: bool,
        /// Start the drain and return.
        #[arg(long)]
        no_wait: bool,
        /// Give up following after this many seconds (the drain goes on).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Forget data server NODE: refused while it holds shards needed to
    /// reach k (drain it first).
    Remove {
        node: u64,
        #[arg(long)]
        json: bool,
    },
    /// Rebuilds of lost or moved shards: progress, or pause and resume
    /// handing out rebuild tasks (the pause is replicated).
    Repair {
        #[command(subcommand)]
        command: SwitchCmd,
    },
    /// Data servers joining the cluster.
    Data {
        #[command(subcommand)]
        command: DataCmd,
    },
    /// Spread placement over every up data server (after adding some):
    /// moves only the slots the new placement changes, says how many bytes
    /// that is against the minimum, then follows the moves.
    Rebalance {
        /// Only say what would move.
        #[arg(long)]
        dry_run: bool,
        /// Cluster-wide budget for moving shards, bytes/s (100M, 1G, 800KiB);
        /// default: each server's own --rebuild-rate.
        #[arg(long)]
        max_bandwidth: Option<String>,
        /// Give up following after this many seconds (the moves go on).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
    /// Key-encryption key rotation: `rotate` makes a new KEK version and
    /// re-wraps every file's data key under it online; `status` shows which
    /// versions wrap how many files.
    Keys {
        #[command(subcommand)]
        command: crate::cmd_keys::KeysCmd,
    },
    /// A directory's layout policy (chunk size, erasure code), which files
    /// and directories created in it inherit (`shardline layout` is an alias).
    Layout {
        #[command(subcommand)]
        command: LayoutCmd,
    },
}

/// `admin repair` and `admin scrub`: a replicated switch, so a stop
/// outlasts restarts of any server.
#[derive(Subcommand)]
pub enum SwitchCmd {
    /// Whether it is stopped (repair: slots being rebuilt and per-server progress).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Resume it.
    Start {
        #[arg(long)]
        json: bool,
    },
    /// Stop it: work running finishes the shard or page it is on, nothing
    /// new starts (stopping repair holds drains and rebalances too).
    Stop {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DataCmd {
    /// Confirm that the data server at ADDR (started with `shardline data
    /// --meta ...`, which registers itself) has joined; waits for it.
    Add {
        addr: String,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum LayoutCmd {
    /// Show a directory's (or file's) layout.
    Get { path: PathBuf },
    /// Set a directory's layout policy for new files.
    Set {
        path: PathBuf,
        /// Erasure code K+M for new files.
        #[arg(long)]
        ec: Option<String>,
        /// Plaintext bytes per chunk for new files.
        #[arg(long)]
        chunk_size: Option<u32>,
    },
}

#[derive(Subcommand)]
pub enum MetaCmd {
    /// Add a metadata server, started beforehand with `shardline meta --join`.
    Add {
        /// The new server's id (unused by current members).
        #[arg(long)]
        id: u64,
        /// The address it listens on.
        #[arg(long)]
        addr: String,
    },
    /// Remove a metadata server from the cluster.
    Remove {
        #[arg(long)]
        id: u64,
    },
}

pub async fn run(cmd: AdminCmd, cluster: &Option<PathBuf>) -> Result<()> {
    let load = || ClusterFile::load(&crate::cluster_path(cluster));
    match cmd {
        AdminCmd::Certs { command } => crate::certs::run(command, cluster),
        AdminCmd::Status { json, wait_healthy, timeout } => {
            let file = load()?;
            if wait_healthy {
                wait_healthy_for(&file, Duration::from_secs(timeout)).await?;
            }
            status(&file, json).await
        }
        AdminCmd::Meta { command } => meta_membership(&load()?, command).await,
        AdminCmd::Nodes { json } => nodes(&load()?, json).await,
        AdminCmd::Drain { node, cancel, no_wait, timeout, json } => {
            crate::cmd_moves::drain(&load()?, node, cancel, no_wait, timeout, json).await
        }
        AdminCmd::Remove { node, json } => crate::cmd_moves::remove(&load()?, node, json).await,
        AdminCmd::Repair { command } => match command {
            SwitchCmd::Status { json } => crate::cmd_moves::repair_status(&load()?, json).await,
            SwitchCmd::Start { json } => crate::cmd_moves::set_switch(&load()?, Switch::Repair, false, json).await,
            SwitchCmd::Stop { json } => crate::cmd_moves::set_switch(&load()?, Switch::Repair, true, json).await,
        },
        AdminCmd::Data { command: DataCmd::Add { addr, timeout, json } } => {
            crate::cmd_moves::data_add(&load()?, &addr, timeout, json).await
        }
        AdminCmd::Rebalance { dry_run, max_bandwidth, timeout, json } => {
            crate::cmd_moves::rebalance(&load()?, dry_run, max_bandwidth.as_deref(), timeout, json).await
        }
        AdminCmd::Capacity { ec, json } => capacity(&load()?, ec.as_deref(), json).await,
        AdminCmd::Keys { command } => crate::cmd_keys::run(&load()?, command).await,
        AdminCmd::Layout { command } => {
            let cmd = match command {
                LayoutCmd::Get { path } => crate::Cmd::Layout { path, ec: None, chunk_size: None },
                LayoutCmd::Set { ec: None, chunk_size: None, .. } => {
                    bail!("admin layout set: give --ec K+M and/or --chunk-size BYTES")
                }
                LayoutCmd::Set { path, ec, chunk_size } => crate::Cmd::Layout { path, ec, chunk_size },
            };
            crate::cmd_files::run(cmd, cluster).await
        }
        AdminCmd::Scrub { command: Some(command), .. } => match command {
            SwitchCmd::Status { json } => crate::cmd_moves::scrub_status(&load()?, json).await,
            SwitchCmd::Start { json } => crate::cmd_moves::set_switch(&load()?, Switch::Scrub, false, json).await,
            SwitchCmd::Stop { json } => crate::cmd_moves::set_switch(&load()?, Switch::Scrub, true, json).await,
        },
        AdminCmd::Scrub { command: None, json } => {
            let file = load()?;
            if leader_view(&file).await?.scrub_paused {
                bail!("scrubbing is stopped (shardline admin scrub start resumes it)");
            }
            let cap = admin_cap(&file, shardline_crypto::cap_ops::SCRUB).await?;
            let totals = on_every_data_server(&file, pb::data_request::Body::Scrub(pb::Scrub { cap })).await?;
            report("scrub", &totals, &["checked", "corrupt", "repaired", "unrepairable"], json)
        }
        AdminCmd::Gc { grace_ms, json } => {
            let file = load()?;
            let cap = admin_cap(&file, shardline_crypto::cap_ops::GC).await?;
            let body = pb::data_request::Body::Gc(pb::CollectGarbage { grace_ms, cap });
            let totals = on_every_data_server(&file, body).await?;
            report("gc", &totals, &["examined", "deleted", "deleted_bytes"], json)
        }
    }
}

/// A cluster-wide capability for `ops` (scrub or GC) from the metadata
/// service; None when the cluster runs without capabilities.
async fn admin_cap(file: &ClusterFile, ops: u32) -> Result<Option<pb::ShardCap>> {
    let meta = MetaClient::new(file.meta_addrs(), Duration::from_secs(5), file.identity(Role::Admin)?);
    let resp = meta.call(pb::meta_request::Body::GrantAdminCap(pb::GrantAdminCap { ops })).await?;
    let Some(pb::meta_response::Body::Caps(caps)) = resp.body else { bail!("no capability in the answer") };
    Ok(caps.caps.into_iter().next())
}

fn report(what: &str, totals: &BTreeMap<&'static str, u64>, keys: &[&str], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(totals)?);
    } else {
        let parts: Vec<String> = keys.iter().map(|k| format!("{} {k}", totals.get(k).copied().unwrap_or(0))).collect();
        println!("{what}: {}", parts.join(", "));
    }
    if totals.get("unrepairable").copied().unwrap_or(0) > 0 {
        bail!("some shards could not be repaired");
    }
    Ok(())
}

/// Send one request to every data server in the map; add up the reports.
async fn on_every_data_server(file: &ClusterFile, body: pb::data_request::Body) -> Result<BTreeMap<&'static str, u64>> {
    let tls = file.identity(Role::Admin)?;
    let meta = MetaClient::new(file.meta_addrs(), Duration::from_secs(5), tls.clone());
    let resp = meta.call(pb::meta_request::Body::GetPlacement(pb::GetPlacement {})).await?;
    let Some(pb::meta_response::Body::Placement(map)) = resp.body else { bail!("no placement map") };
    let pool = shardline_rpc::Pool::new(tls, Role::Data, Duration::from_secs(2), Duration::from_secs(3600));
    let mut totals = BTreeMap::new();
    let req = pb::DataRequest { body: Some(body) };
    for s in map.servers.iter().filter(|s| s.state == "up") {
        let frame = shardline_rpc::Frame::from_message(&req, bytes::Bytes::new());
        let resp: pb::DataResponse = match pool.call(&s.addr, &frame).await {
            Ok(f) => f.decode()?,
            Err(e) => {
                eprintln!("data server {} ({}): {e}", s.id, s.addr);
                *totals.entry("unreachable").or_insert(0) += 1;
                continue;
            }
        };
        if let Some(e) = resp.error {
            bail!("data server {}: {}", s.id, e.message);
        }
        match resp.body {
            Some(pb::data_response::Body::Scrub(r)) => {
                for (k, v) in [
                    ("checked", r.checked),
                    ("corrupt", r.corrupt),
                    ("repaired", r.repaired),
                    ("unrepairable", r.unrepairable),
                ] {
                    *totals.entry(k).or_insert(0) += v;
                }
            }
            Some(pb::data_response::Body::Gc(r)) => {
                for (k, v) in [("examined", r.examined), ("deleted", r.deleted), ("deleted_bytes", r.deleted_bytes)] {
                    *totals.entry(k).or_insert(0) += v;
                }
            }
            _ => bail!("data server {}: unexpected answer", s.id),
        }
    }
    Ok(totals)
}

/// Propose one membership change to the metadata leader; print the members after it.
async fn meta_membership(file: &ClusterFile, cmd: MetaCmd) -> Result<()> {
    let change = match cmd {
        MetaCmd::Add { id, addr } => pb::MetaMembershipChange { id, addr, remove: false },
        MetaCmd::Remove { id } => pb::MetaMembershipChange { id, addr: String::new(), remove: true },
    };
    let meta = MetaClient::new(file.meta_addrs(), Duration::from_secs(10), file.identity(Role::Admin)?);
    let resp = meta.call(pb::meta_request::Body::MetaMembership(change)).await?;
    let Some(pb::meta_response::Body::MetaMembers(m)) = resp.body else {
        bail!("unexpected reply to a membership change")
    };
    println!("metadata servers:");
    for v in &m.voters {
        println!("  {} {}", v.id, v.addr);
    }
    Ok(())
}

/// Poll the leader until every data server (those in the cluster file and
/// any other registered) is up and every placement group healthy.
async fn wait_healthy_for(file: &ClusterFile, timeout: Duration) -> Result<()> {
    let start = std::time::Instant::now();
    let addrs = file.meta_addrs();
    let tls = file.identity(Role::Admin)?;
    loop {
        let last = match crate::health::leader_status(&addrs, &tls).await {
            Some(st) => {
                let mut expected: Vec<u64> =
                    file.data.iter().map(|n| n.id).chain(st.data.iter().map(|d| d.id)).collect();
                expected.sort_unstable();
                expected.dedup();
                let h = crate::health::health(&st, &expected);
                if h.healthy {
                    return Ok(());
                }
                h.summary
            }
            None => "no metadata leader reachable".to_string(),
        };
        if start.elapsed() >= timeout {
            bail!("cluster not healthy after {} s: {last}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn status(file: &ClusterFile, json: bool) -> Result<()> {
    let meta = MetaClient::new(file.meta_addrs(), Duration::from_secs(2), file.identity(Role::Admin)?);
    let mut metas = Vec::new();
    let mut leader_view: Option<pb::ClusterStatus> = None;
    let mut errors = Vec::new();
    for n in &file.meta {
        match meta.call_one(&n.addr, pb::meta_request::Body::Status(pb::GetStatus {})).await {
            Ok(pb::MetaResponse { body: Some(pb::meta_response::Body::Status(st)), .. }) => {
                if let Some(me) = st.meta.first() {
                    metas.push(serde_json::json!({"id": me.id, "address": me.addr, "role": me.role, "term": me.term,
                        "commit_index": me.commit_index, "applied_index": me.applied_index}));
                    if me.role == "leader" {
                        leader_view = Some(st.clone());
                    }
                }
            }
            Ok(_) => errors.push(format!("metadata server {}: unexpected answer", n.id)),
            Err(e) => {
                errors.push(format!("metadata server {}: {e}", n.id));
                metas.push(serde_json::json!({"id": n.id, "address": n.addr, "role": "unreachable", "term": null,
                    "error": e.to_string()}))
            }
        }
    }
    let Some(st) = leader_view else {
        if json {
            println!("{}", serde_json::json!({"meta": metas, "data": [], "leader": null}));
        }
        bail!("no metadata leader reachable (is the cluster running?): {}", errors.join("; "));
    };
    let data: Vec<_> = st
        .data
        .iter()
        .map(|d| {
            serde_json::json!({"id": d.id, "address": d.addr, "state": d.state, "used_bytes": d.used_bytes,
            "capacity_bytes": d.capacity_bytes, "shards": d.shard_count, "rack": d.rack,
            "rebuild_chunks_done": d.rebuild_chunks_done, "rebuild_chunks_total": d.rebuild_chunks_total,
            "rebuild_bytes": d.rebuild_bytes, "slots": d.slots, "moving_out_slots": d.moving_out,
            "moving_out_bytes": d.moving_out_bytes, "held_bytes": d.held_bytes,
            "scrub_checked": d.scrub_checked, "scrub_total": d.scrub_total,
            "store_backend": d.store.as_ref().map(|s| s.backend.clone()),
            "direct_io": d.store.as_ref().map(|s| s.direct_io),
            "data_fs": d.store.as_ref().map(|s| s.fs_type.clone())})
        })
        .collect();
    let pgs = serde_json::json!({"total": st.pgs_total, "healthy": st.pgs_healthy, "degraded": st.pgs_degraded,
        "unavailable": st.pgs_unavailable, "rebuilds_pending": st.rebuilds_pending, "epoch": st.epoch,
        "moves_pending": st.moves_pending, "moves_pending_bytes": st.moves_pending_bytes,
        "move_rate_bytes_per_s": st.move_rate, "moves_eta_s": eta_secs(st.moves_pending_bytes, st.move_rate),
        "repair_paused": st.repair_paused,
        "scrub_paused": st.scrub_paused});
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"meta": metas, "data": data, "placement_groups": pgs}))?
        );
        return Ok(());
    }
    println!("metadata servers:");
    for m in &metas {
        println!(
            "  {:>3}  {:<22} {:<12} term {}",
            m["id"],
            m["address"].as_str().unwrap_or(""),
            m["role"].as_str().unwrap_or(""),
            m["term"]
        );
    }
    println!("data servers:");
    for d in &st.data {
        println!(
            "  {:>3}  {:<22} {:<8} {:>12} used / {:>14} capacity, {} shards",
            d.id,
            d.addr,
            d.state,
            human(d.used_bytes),
            human(d.capacity_bytes),
            d.shard_count
        );
    }
    println!("storage: {}", crate::storage_report::StorageReport::from_status(&st).line());
    println!(
        "placement groups (epoch {}): {} total, {} healthy, {} degraded, {} unavailable",
        st.epoch, st.pgs_total, st.pgs_healthy, st.pgs_degraded, st.pgs_unavailable
    );
    for d in st.data.iter().filter(|d| d.state == "draining") {
        println!(
            "draining data-{}: {} slot(s), {} still to move off it",
            d.id,
            d.moving_out,
            human(d.moving_out_bytes)
        );
    }
    if st.moves_pending > 0 {
        let pace = match eta_secs(st.moves_pending_bytes, st.move_rate) {
            Some(eta) => format!(", at {}/s, ETA {}", human(st.move_rate), duration_text(eta)),
            None => String::from(", rate not measured yet"),
        };
        println!(
            "moving: {} slot(s), {} to release from old holders{pace}",
            st.moves_pending,
            human(st.moves_pending_bytes)
        );
    }
    for d in st.data.iter().filter(|d| d.scrub_total > 0) {
        let pct = 100.0 * d.scrub_checked as f64 / d.scrub_total as f64;
        println!("scrubbing data-{}: {}/{} shards checked ({pct:.0}%)", d.id, d.scrub_checked, d.scrub_total);
    }
    if st.rebuilds_pending > 0 {
        println!("rebuilding: {} shard slots pending", st.rebuilds_pending);
        for d in st.data.iter().filter(|d| d.rebuild_chunks_total > d.rebuild_chunks_done) {
            let pct = 100.0 * d.rebuild_chunks_done as f64 / d.rebuild_chunks_total.max(1) as f64;
            println!(
                "  data-{}: {}/{} chunks ({pct:.0}%), {} rebuilt",
                d.id,
                d.rebuild_chunks_done,
                d.rebuild_chunks_total,
                human(d.rebuild_bytes)
            );
        }
    }
    Ok(())
}

async fn leader_view(file: &ClusterFile) -> Result<pb::ClusterStatus> {
    match crate::health::leader_status(&file.meta_addrs(), &file.identity(Role::Admin)?).await {
        Some(st) => Ok(st),
        None => bail!("no metadata leader reachable (is the cluster running?)"),
    }
}

async fn nodes(file: &ClusterFile, json: bool) -> Result<()> {
    let nodes = crate::capacity::nodes(&leader_view(file).await?);
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(());
    }
    println!(
        "  {:>4}  {:<12} {:<13} {:>11} {:>11} {:>11} {:>5} {:>8}",
        "id", "domain", "state", "capacity", "used", "free", "use%", "shards"
    );
    for n in &nodes {
        println!(
            "  {:>4}  {:<12} {:<13} {:>11} {:>11} {:>11} {:>4.0}% {:>8}",
            n.id,
            n.domain,
            n.state,
            human(n.capacity_bytes),
            human(n.used_bytes),
            human(n.free_bytes),
            100.0 * n.used_bytes as f64 / n.capacity_bytes.max(1) as f64,
            n.shards
        );
    }
    Ok(())
}

async fn capacity(file: &ClusterFile, ec: Option<&str>, json: bool) -> Result<()> {
    let layout = match ec {
        Some(ec) => shardline_types::Layout::default().with_ec(ec)?,
        None => file.layout()?,
    };
    let st = leader_view(file).await?;
    let r = crate::capacity::report(&st, u64::from(layout.data_shards), u64::from(layout.parity_shards));
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "raw: {} capacity, {} used, {} free on the {} of {} data servers that are up",
        human(r.raw_capacity_bytes),
        human(r.raw_used_bytes),
        human(r.raw_free_bytes),
        r.servers_up,
        r.servers_total
    );
    println!("usable for new files (EC {}): {} free", r.ec, human(r.usable_free_bytes));
    println!("largest file the cluster can still take: {}", human(r.largest_file_bytes));
    println!("failure domains:");
    for d in &r.domains {
        println!(
            "  {:<12} {} server(s), {:>11} capacity, {:>11} used, {:>11} free",
            d.name,
            d.servers,
            human(d.capacity_bytes),
            human(d.used_bytes),
            human(d.free_bytes)
        );
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

/// Seconds until `bytes` are moved at `rate` bytes/s (none before a rate
/// has been measured).
pub fn eta_secs(bytes: u64, rate: u64) -> Option<u64> {
    (rate > 0).then(|| bytes.div_ceil(rate))
}

/// `s` seconds as "1h02m", "3m05s" or "42s".
pub fn duration_text(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

pub fn human(b: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::{duration_text, eta_secs};

    #[test]
    fn the_move_eta_comes_from_the_measured_rate() {
        assert_eq!(eta_secs(1000, 0), None, "no rate measured yet");
        assert_eq!(eta_secs(1000, 300), Some(4));
        assert_eq!(duration_text(42), "42s");
        assert_eq!(duration_text(185), "3m05s");
        assert_eq!(duration_text(3720), "1h02m");
    }
}
