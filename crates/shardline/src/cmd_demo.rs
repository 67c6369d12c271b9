//! `shardline demo`: the main job on an embedded default.
//!
//! Starts a fresh local cluster (3 meta + 8 data processes, RS 4+2, encrypted)
//! in a temporary folder, writes synthetic training shards through the native
//! client, reads them all back verifying every byte, stops the cluster, and
//! reports throughput beside the loopback bandwidth measured in the same run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use shardline_client::Client;
use shardline_types::Layout;

use crate::local_cluster::{LocalCluster, Spec};
use crate::storage_report::StorageReport;
use crate::synthetic::Pattern;
use crate::workload::{round1, round3};
use crate::workload::{run_phase, Direction};

#[derive(Args)]
pub struct DemoArgs {
    /// Total bytes of training shards to write and read back.
    #[arg(long, default_value_t = 2 << 30)]
    size: u64,
    /// Number of shard files.
    #[arg(long, default_value_t = 8)]
    files: u64,
    /// Files written / read concurrently.
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// Erasure code K+M.
    #[arg(long, default_value = "4+2")]
    ec: String,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
    /// Keep the cluster's folder here instead of a temporary one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub async fn run(a: DemoArgs) -> Result<()> {
    if a.files == 0 {
        bail!("--files must be at least 1");
    }
    let layout = Layout::default().with_ec(&a.ec)?;
    Pattern::check_fits(a.files, a.size.div_ceil(a.files))?;
    let say = |msg: &str| {
        if !a.json {
            eprintln!("{msg}");
        }
    };
    say("measuring loopback TCP bandwidth…");
    let loopback = crate::loopback::measure(a.size.clamp(256 << 20, 2 << 30), 4)?;

    let tmp = tempfile::Builder::new().prefix("shardline-demo-").tempdir().context("create a temporary folder")?;
    let dir = a.data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let spec = Spec {
        dir,
        meta: 3,
        data: layout.width() + crate::cmd_up::SPARE_DATA_SERVERS,
        layout,
        pg_count: 64,
        host: "127.0.0.1".into(),
        data_capacity: None,
        client_lease_ms: None,
        data_integrity_only: false,
        small_file_max: None,
    };
    say(&format!("starting a local cluster: 3 metadata + {} data servers, RS {}, encrypted…", spec.data, layout.ec()));
    let mut cluster = LocalCluster::start(&spec)?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let client = Client::connect(cluster.file.client_config(shardline_rpc::Role::Client)?).await?;
    client.mkdir("/train").await.context("create /train")?;

    let pattern = Pattern::new(0x5348_4152_444c_494e);
    let sizes: Vec<u64> = (0..a.files).map(|i| a.size / a.files + u64::from(i < a.size % a.files)).collect();
    say(&format!("writing {} files, {} in total…", a.files, crate::cmd_admin::human(a.size)));
    let write = run_phase("/train", &client, &pattern, &sizes, a.parallel, Direction::Write).await?;
    say("reading them back and verifying every byte…");
    let read = run_phase("/train", &client, &pattern, &sizes, a.parallel, Direction::Read).await?;
    // The suite the files were sealed with, as the first one records it
    // (the client picks AES-256-GCM on CPUs with AES instructions).
    let suite = client.open("/train/shard-00000.bin").await.context("open the first file")?.cipher_suite();
    // What stored the data, as the data servers report it.
    let storage = cluster.leader_status().await.map(|st| StorageReport::from_status(&st)).unwrap_or_default();
    cluster.stop();
    drop(tmp);

    // The verdict is the comparison itself: every byte of every file, and
    // every file's size.
    let verified = read.first_bad.is_none();
    let first_bad = read.first_bad.as_ref().map(|(file, offset)| serde_json::json!({"file": file, "offset": offset}));
    let loop_mbps = loopback / 1e6;
    if a.json {
        let mut report = serde_json::json!({
            "bytes": a.size, "files": a.files, "write_mbps": round1(write.mbps()), "read_mbps": round1(read.mbps()),
            "loopback_mbps": round1(loop_mbps), "write_vs_loopback": round3(write.mbps() / loop_mbps),
            "read_vs_loopback": round3(read.mbps() / loop_mbps), "verified": verified, "first_bad": first_bad,
            "ec": layout.ec(), "encrypted": true, "cipher": suite.name().to_ascii_lowercase(), "meta_servers": 3,
            "data_servers": spec.data, "write_secs": round3(write.secs), "read_secs": round3(read.secs),
            "units": "MB/s (10^6 bytes per second)"
        });
        if let Some(obj) = report.as_object_mut() {
            obj.extend(storage.json_fields());
        }
        println!("{report}");
    } else {
        println!(
            "shardline demo: {} files, {} bytes, RS {} over {} data servers, {}",
            a.files,
            a.size,
            layout.ec(),
            spec.data,
            suite.name()
        );
        println!("  storage       {}", storage.line());
        println!("  loopback TCP  {:>9.1} MB/s  (baseline, 4 streams, same run)", loop_mbps);
        println!(
            "  write         {:>9.1} MB/s  {:>5.1}% of loopback  ({:.2} s)",
            write.mbps(),
            100.0 * write.mbps() / loop_mbps,
            write.secs
        );
        println!(
            "  read          {:>9.1} MB/s  {:>5.1}% of loopback  ({:.2} s)",
            read.mbps(),
            100.0 * read.mbps() / loop_mbps,
            read.secs
        );
        match &read.first_bad {
            None => println!("  verified      every byte read back matches"),
            Some((file, offset)) => {
                println!("  verified      NO: {file} differs from what was written at byte {offset}")
            }
        }
    }
    if let Some((file, offset)) = &read.first_bad {
        bail!("verification failed: {file} differs from what was written at byte {offset}");
    }
    Ok(())
}
