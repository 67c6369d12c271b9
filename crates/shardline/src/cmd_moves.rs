//! `shardline admin drain | remove | data add | rebalance`: moving shards
//! between data servers.
//!
//! The state lives in the metadata service (replicated through Raft): a
//! drain or rebalance is a map change whose moved slots the new targets
//! rebuild and the old holders then release (`meta/src/registry_moves.rs`,
//! `data/src/release.rs`). These commands ask for the change, then follow
//! it in the leader's status until nothing is left to move, with a progress
//! bar on a terminal. Any of them can be run again after a crash of any
//! party (the CLI included): it picks up the change where it is.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shardline_proto::v1 as pb;
use shardline_rpc::{MetaClient, Role};

use crate::cluster_file::ClusterFile;
use crate::cmd_admin::human;

/// How often the leader's status is read while following a move.
const POLL: Duration = Duration::from_millis(250);

async fn call(file: &ClusterFile, body: pb::meta_request::Body) -> Result<pb::MetaResponse> {
    let meta = MetaClient::new(file.meta_addrs(), Duration::from_secs(10), file.identity(Role::Admin)?);
    Ok(meta.call(body).await?)
}

fn plan_of(resp: pb::MetaResponse) -> Result<pb::MovePlan> {
    match resp.body {
        Some(pb::meta_response::Body::MovePlan(p)) => Ok(p),
        _ => bail!("the metadata service sent no move plan"),
    }
}

fn plan_json(p: &pb::MovePlan) -> serde_json::Value {
    serde_json::json!({"epoch": p.epoch, "moves": p.moves, "bytes": p.bytes, "minimum_bytes": p.minimum_bytes,
        "spread_before_bytes": p.spread_before, "spread_after_bytes": p.spread_after, "applied": p.applied})
}

fn print_plan(what: &str, p: &pb::MovePlan) {
    println!(
        "{what}: {} slot(s) to move, {} (minimum {}); spread of held bytes {} -> {}",
        p.moves,
        human(p.bytes),
        human(p.minimum_bytes),
        human(p.spread_before),
        human(p.spread_after)
    );
}

/// `admin drain NODE`.
pub async fn drain(file: &ClusterFile, id: u64, cancel: bool, no_wait: bool, timeout: u64, json: bool) -> Result<()> {
    let resp = call(file, pb::meta_request::Body::DrainDataServer(pb::DrainDataServer { id, cancel }))
        .await
        .with_context(|| format!("drain data server {id}"))?;
    let plan = plan_of(resp)?;
    if cancel || no_wait {
        if json {
            println!("{}", serde_json::json!({"node": id, "cancelled": cancel, "plan": plan_json(&plan)}));
        } else {
            print_plan(if cancel { "drain cancelled" } else { "drain started" }, &plan);
        }
        return Ok(());
    }
    if !json {
        print_plan(&format!("draining data server {id}"), &plan);
    }
    let moved = follow(file, Duration::from_secs(timeout), &format!("drain data-{id}"), |st| {
        let d = st.data.iter().find(|d| d.id == id)?;
        // A server that is down has nothing to copy from and cannot release:
        // done once its slots are elsewhere (their new targets rebuild them
        // from peers; `remove` waits for that).
        Some((d.moving_out_bytes + d.held_bytes, d.state == "drained" || (d.state == "down" && d.slots == 0)))
    })
    .await?;
    report(json, serde_json::json!({"node": id, "state": "drained", "plan": plan_json(&plan)}), &moved, || {
        println!(
            "data server {id} drained: {} moved in {:.1} s ({}/s); it can be removed (shardline admin remove {id})",
            human(moved.bytes),
            moved.seconds,
            human(moved.rate())
        )
    })
}

/// `admin rebalance`.
pub async fn rebalance(
    file: &ClusterFile,
    dry_run: bool,
    max_bandwidth: Option<&str>,
    timeout: u64,
    json: bool,
) -> Result<()> {
    let max_bandwidth = max_bandwidth.map(parse_rate).transpose()?.unwrap_or(0);
    let resp = call(file, pb::meta_request::Body::Rebalance(pb::Rebalance { dry_run, max_bandwidth }))
        .await
        .context("rebalance")?;
    let plan = plan_of(resp)?;
    if dry_run {
        if json {
            println!("{}", serde_json::to_string_pretty(&plan_json(&plan))?);
        } else {
            print_plan("rebalance (dry run, nothing moved)", &plan);
        }
        return Ok(());
    }
    if !json {
        print_plan("rebalancing", &plan);
    }
    let moved = follow(file, Duration::from_secs(timeout), "rebalance", |st| {
        Some((st.moves_pending_bytes, st.moves_pending == 0 && st.rebuilds_pending == 0))
    })
    .await?;
    report(json, serde_json::json!({"plan": plan_json(&plan)}), &moved, || {
        println!(
            "rebalance done: {} moved (minimum {}) in {:.1} s ({}/s)",
            human(moved.bytes),
            human(plan.minimum_bytes),
            moved.seconds,
            human(moved.rate())
        )
    })
}

/// `admin remove NODE`.
pub async fn remove(file: &ClusterFile, id: u64, json: bool) -> Result<()> {
    call(file, pb::meta_request::Body::RemoveDataServer(pb::RemoveDataServer { id })).await?;
    if json {
        println!("{}", serde_json::json!({"node": id, "removed": true}));
    } else {
        println!("data server {id} removed; stop its process (its id may not join again)");
    }
    Ok(())
}

/// The two replicated pause switches operators flip.
#[derive(Debug, Clone, Copy)]
pub enum Switch {
    /// Handing out rebuild tasks (repairs, drains, rebalances).
    Repair,
    /// Scrubbing on every data server.
    Scrub,
}

/// `admin repair stop|start` and `admin scrub stop|start`.
pub async fn set_switch(file: &ClusterFile, switch: Switch, paused: bool, json: bool) -> Result<()> {
    let (body, name, stopped) = match switch {
        Switch::Repair => (
            pb::meta_request::Body::SetRepair(pb::SetRepair { paused }),
            "repair",
            "stopped: no new rebuild tasks are handed out",
        ),
        Switch::Scrub => {
            (pb::meta_request::Body::SetScrub(pb::SetScrub { paused }), "scrub", "stopped on every data server")
        }
    };
    call(file, body).await?;
    if json {
        let mut v = serde_json::Map::new();
        v.insert(format!("{name}_paused"), serde_json::Value::Bool(paused));
        println!("{}", serde_json::Value::Object(v));
    } else {
        println!("{name} {}", if paused { stopped } else { "started" });
    }
    Ok(())
}

/// The leader's status, or the one-line error an operator sees.
async fn leader_status(file: &ClusterFile) -> Result<pb::ClusterStatus> {
    match crate::health::leader_status(&file.meta_addrs(), &file.identity(Role::Admin)?).await {
        Some(st) => Ok(st),
        None => bail!("no metadata leader reachable (is the cluster running?)"),
    }
}

/// `admin scrub status`.
pub async fn scrub_status(file: &ClusterFile, json: bool) -> Result<()> {
    let st = leader_status(file).await?;
    let running: Vec<&pb::DataServerInfo> = st.data.iter().filter(|d| d.scrub_total > 0).collect();
    if json {
        let servers: Vec<_> = running
            .iter()
            .map(|d| serde_json::json!({"id": d.id, "checked": d.scrub_checked, "total": d.scrub_total}))
            .collect();
        println!("{}", serde_json::json!({"paused": st.scrub_paused, "servers": servers}));
        return Ok(());
    }
    println!("scrub {}", if st.scrub_paused { "stopped" } else { "running (daily, and on request)" });
    for d in running {
        println!("  data-{}: {}/{} shards checked", d.id, d.scrub_checked, d.scrub_total);
    }
    Ok(())
}

/// `admin repair status`.
pub async fn repair_status(file: &ClusterFile, json: bool) -> Result<()> {
    let st = leader_status(file).await?;
    let servers: Vec<_> = st
        .data
        .iter()
        .filter(|d| d.rebuild_chunks_total > 0)
        .map(|d| {
            serde_json::json!({"id": d.id, "chunks_done": d.rebuild_chunks_done,
                "chunks_total": d.rebuild_chunks_total, "bytes": d.rebuild_bytes})
        })
        .collect();
    if json {
        let v = serde_json::json!({"paused": st.repair_paused, "slots_pending": st.rebuilds_pending,
            "pgs_degraded": st.pgs_degraded, "pgs_unavailable": st.pgs_unavailable, "servers": servers});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "repair {}: {} slot(s) to rebuild, {} degraded and {} unavailable placement groups",
        if st.repair_paused { "stopped" } else { "running" },
        st.rebuilds_pending,
        st.pgs_degraded,
        st.pgs_unavailable
    );
    for d in st.data.iter().filter(|d| d.rebuild_chunks_total > 0) {
        println!(
            "  data-{}: {}/{} chunks, {} rebuilt (since it started)",
            d.id,
            d.rebuild_chunks_done,
            d.rebuild_chunks_total,
            human(d.rebuild_bytes)
        );
    }
    Ok(())
}

/// `admin data add ADDR`: data servers register themselves when started
/// with `--meta`; this waits until the one at `addr` has, and says so.
pub async fn data_add(file: &ClusterFile, addr: &str, timeout: u64, json: bool) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Some(st) = crate::health::leader_status(&file.meta_addrs(), &file.identity(Role::Admin)?).await {
            if let Some(d) = st.data.iter().find(|d| d.addr == addr && d.state == "up") {
                let slots = d.slots;
                if json {
                    println!("{}", serde_json::json!({"node": d.id, "address": d.addr, "slots": slots}));
                } else if slots == 0 {
                    println!(
                        "data server {} at {addr} joined; it holds no placement slots yet: run `shardline admin rebalance`",
                        d.id
                    );
                } else {
                    println!("data server {} at {addr} joined with {slots} placement slots", d.id);
                }
                return Ok(());
            }
        }
        if start.elapsed() >= Duration::from_secs(timeout) {
            bail!("no data server at {addr} registered within {timeout} s (start it with `shardline data --meta ...`)");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Bytes a followed move got through, and how long it took.
struct Moved {
    bytes: u64,
    seconds: f64,
}

impl Moved {
    fn rate(&self) -> u64 {
        (self.bytes as f64 / self.seconds.max(1e-3)) as u64
    }
}

fn report(json: bool, mut v: serde_json::Value, moved: &Moved, text: impl FnOnce()) -> Result<()> {
    if json {
        v["bytes_moved"] = moved.bytes.into();
        v["seconds"] = moved.seconds.into();
        v["rate_bytes_per_s"] = moved.rate().into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        text();
    }
    Ok(())
}

/// Follow the leader's status until `probe` says done. `probe` gives the
/// bytes still to move and whether the move is over (None: what it follows
/// is gone from the status).
async fn follow(
    file: &ClusterFile,
    timeout: Duration,
    what: &str,
    probe: impl Fn(&pb::ClusterStatus) -> Option<(u64, bool)>,
) -> Result<Moved> {
    let start = Instant::now();
    let mut first: Option<u64> = None;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut last_left = 0;
    loop {
        match crate::health::leader_status(&file.meta_addrs(), &file.identity(Role::Admin)?).await {
            Some(st) => {
                let Some((left, done)) = probe(&st) else { bail!("{what}: the server is no longer in the cluster") };
                let total = *first.get_or_insert(left);
                let bar = bar.get_or_insert_with(|| crate::progress::bytes(total, what));
                bar.set_position(total.saturating_sub(left));
                last_left = left;
                if done {
                    bar.finish_and_clear();
                    return Ok(Moved { bytes: total, seconds: start.elapsed().as_secs_f64() });
                }
            }
            // A leader change: the move's state is replicated; keep following.
            None => tracing::debug!("no metadata leader for now"),
        }
        if start.elapsed() >= timeout {
            bail!(
                "{what}: not finished after {} s ({} left); run it again to keep following",
                timeout.as_secs(),
                human(last_left)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A rate in bytes per second: `250M`, `1.5G`, `100MB/s`, `800KiB`, or
/// plain bytes (decimal units: K = 1000; binary with an `i`).
pub fn parse_rate(s: &str) -> Result<u64> {
    let t = s.trim().trim_end_matches("/s").trim_end_matches('B');
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let mult = match &t[i..] {
                "K" | "k" => 1_000,
                "M" => 1_000_000,
                "G" => 1_000_000_000,
                "Ki" => 1 << 10,
                "Mi" => 1 << 20,
                "Gi" => 1 << 30,
                _ => bail!("bad rate {s:?}: use bytes per second like 100M, 1.5G or 800KiB"),
            };
            (&t[..i], mult)
        }
    };
    let n: f64 = num.trim().parse().map_err(|_| anyhow::anyhow!("bad rate {s:?}: use bytes per second like 100M"))?;
    if !(n.is_finite() && n > 0.0) {
        bail!("bad rate {s:?}: must be above zero");
    }
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("100M").unwrap(), 100_000_000);
        assert_eq!(parse_rate("100MB/s").unwrap(), 100_000_000);
        assert_eq!(parse_rate("1.5G").unwrap(), 1_500_000_000);
        assert_eq!(parse_rate("8KiB").unwrap(), 8192);
        assert_eq!(parse_rate("4096").unwrap(), 4096);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
    }
}
