//! `shardline admin`: cluster operations.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;
use shardline_proto::v1 as pb;
use shardline_rpc::MetaClient;

use crate::cluster_file::ClusterFile;

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Metadata servers, data servers and placement-group health.
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: AdminCmd, cluster: &Option<PathBuf>) -> Result<()> {
    let file = ClusterFile::load(&crate::cluster_path(cluster))?;
    match cmd {
        AdminCmd::Status { json } => status(&file, json).await,
    }
}

async fn status(file: &ClusterFile, json: bool) -> Result<()> {
    let meta = MetaClient::new(file.meta_addrs(), Duration::from_secs(2));
    let mut metas = Vec::new();
    let mut leader_view: Option<pb::ClusterStatus> = None;
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
            _ => metas.push(serde_json::json!({"id": n.id, "address": n.addr, "role": "unreachable", "term": null})),
        }
    }
    let Some(st) = leader_view else {
        if json {
            println!("{}", serde_json::json!({"meta": metas, "data": [], "leader": null}));
        }
        bail!("no metadata leader reachable (is the cluster running?)");
    };
    let data: Vec<_> = st
        .data
        .iter()
        .map(|d| {
            serde_json::json!({"id": d.id, "address": d.addr, "state": d.state, "used_bytes": d.used_bytes,
            "capacity_bytes": d.capacity_bytes, "shards": d.shard_count})
        })
        .collect();
    let pgs = serde_json::json!({"total": st.pgs_total, "healthy": st.pgs_healthy, "degraded": st.pgs_degraded,
        "unavailable": st.pgs_unavailable, "epoch": st.epoch});
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
    println!(
        "placement groups (epoch {}): {} total, {} healthy, {} degraded, {} unavailable",
        st.epoch, st.pgs_total, st.pgs_healthy, st.pgs_degraded, st.pgs_unavailable
    );
    Ok(())
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
