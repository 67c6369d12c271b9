//! The end of a run, once every fault is undone and the cluster healthy:
//! every file of both workloads is read back through a fresh native client
//! and compared byte for byte with what its writes put there (the newest
//! acknowledged write, or a later failed one that may have applied).

use std::time::{Duration, Instant};

use shardline_client::Client;

use crate::content::Outcome;
use crate::data_load::{is_not_found, now, File};

#[derive(Debug, Default)]
pub struct FinalCheck {
    pub files: u64,
    pub bytes_checked: u64,
    pub lost_writes: u64,
    pub unreadable: u64,
    pub wrong_reads: u64,
    pub stale_reads: u64,
    pub details: Vec<String>,
}

/// Read back every file in `files` (the run's clock started at `t0`).
pub async fn final_reads(client: &Client, t0: Instant, files: &[&File]) -> FinalCheck {
    let mut out = FinalCheck::default();
    for f in files {
        let model = f.model.lock().unwrap_or_else(|e| e.into_inner()).clone();
        out.files += 1;
        let acked = model.writes.iter().filter(|w| w.outcome == Outcome::Acked).count() as u64;
        let mut last_err = String::new();
        let mut data = None;
        for _ in 0..10 {
            match client.read_file(&f.path).await {
                Ok(d) => {
                    data = Some(Some(d));
                    break;
                }
                Err(e) if is_not_found(&e) => {
                    data = Some(None);
                    break;
                }
                Err(e) => last_err = e.to_string(),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let t = now(t0);
        match data {
            Some(Some(d)) => {
                let asked = model.max_size().max(d.len() as u64);
                let c = model.check_read(0, asked, &d, t, t);
                out.bytes_checked += c.bytes_checked;
                if !c.ok() {
                    out.lost_writes += c.lost_writes.len() as u64;
                    out.wrong_reads += u64::from(c.wrong > 0);
                    out.stale_reads += u64::from(c.stale > 0);
                    out.details.push(format!("{}: {}", f.path, c.first_bad.unwrap_or_default()));
                }
            }
            Some(None) => {
                if model.must_exist() {
                    out.lost_writes += acked;
                    out.details.push(format!("{}: gone, after {acked} acknowledged writes", f.path));
                }
            }
            None => {
                if model.must_exist() {
                    out.unreadable += 1;
                    out.details.push(format!("{}: unreadable: {last_err}", f.path));
                }
            }
        }
    }
    out
}
