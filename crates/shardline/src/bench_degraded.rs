//! The failure rows of `shardline bench`, both with one data server
//! killed (SIGKILL, as a crash): the degraded read — the native sequential
//! data read back while the server is down, with repair stopped (the
//! replicated `admin repair stop` switch) so no rebuild competes — and then
//! the rebuild of that server's shards elsewhere once repair starts again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shardline_client::Client;
use shardline_proto::v1 as pb;
use shardline_rpc::{MetaClient, Role};

use crate::local_cluster::LocalCluster;
use crate::synthetic::Pattern;
use crate::workload::{run_phase, Direction, Phase};

/// The data server both rows kill.
pub const VICTIM: u64 = 1;

fn admin(cluster: &LocalCluster) -> Result<Arc<MetaClient>> {
    Ok(Arc::new(MetaClient::new(
        cluster.file.meta_addrs(),
        Duration::from_secs(10),
        cluster.file.identity(Role::Admin)?,
    )))
}

/// Stop (`paused`) or start handing out rebuild tasks.
pub async fn set_repair(cluster: &LocalCluster, paused: bool) -> Result<()> {
    admin(cluster)?
        .call(pb::meta_request::Body::SetRepair(pb::SetRepair { paused }))
        .await
        .with_context(|| format!("{} repair", if paused { "stop" } else { "start" }))?;
    Ok(())
}

/// The leader's status (only the leader knows the data servers' progress).
async fn leader_status(meta: &MetaClient, addrs: &[String]) -> Option<pb::ClusterStatus> {
    for addr in addrs {
        let body = pb::meta_request::Body::Status(Default::default());
        if let Ok(pb::MetaResponse { body: Some(pb::meta_response::Body::Status(s)), .. }) =
            meta.call_one(addr, body).await
        {
            if s.meta.first().is_some_and(|m| m.role == "leader") {
                return Some(s);
            }
        }
    }
    None
}

/// Stop repair, kill data server [`VICTIM`], wait until the metadata
/// service declares it down, then read the files of `sizes` under `dir`
/// back through a fresh client, verifying every byte. Repair stays stopped:
/// [`rebuild`] starts it.
pub async fn degraded_read(cluster: &mut LocalCluster, dir: &str, pattern: &Pattern, sizes: &[u64]) -> Result<Phase> {
    set_repair(cluster, true).await?;
    cluster.kill(&format!("data-{VICTIM}"))?;
    let (meta, addrs) = (admin(cluster)?, cluster.file.meta_addrs());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = leader_status(&meta, &addrs).await;
        if st.is_some_and(|s| s.data.iter().any(|d| d.id == VICTIM && d.state == "down")) {
            break;
        }
        if Instant::now() > deadline {
            bail!("data server {VICTIM} was not declared down within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = Client::connect(cluster.file.client_config(Role::Client)?).await?;
    let read = run_phase(dir, &client, pattern, sizes, 2, Direction::Read).await?;
    if let Some((file, offset)) = &read.first_bad {
        bail!("degraded read: {file} differs from what was written at byte {offset}");
    }
    Ok(read)
}

/// Time the rebuild of data server [`VICTIM`]'s shards elsewhere: kill it
/// (unless `killed` already), start repair, and time from the first rebuilt
/// byte until nothing is pending. Bytes rebuilt and seconds.
pub async fn rebuild(cluster: &mut LocalCluster, killed: bool) -> Result<(u64, f64)> {
    if !killed {
        cluster.kill(&format!("data-{VICTIM}"))?;
    }
    set_repair(cluster, false).await?;
    let (meta, addrs) = (admin(cluster)?, cluster.file.meta_addrs());
    // Rebuild starts once the server is declared down.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut started: Option<Instant> = None;
    loop {
        let Some(s) = leader_status(&meta, &addrs).await else {
            if Instant::now() > deadline {
                bail!("no metadata leader during the rebuild");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let bytes: u64 = s.data.iter().map(|d| d.rebuild_bytes).sum();
        let down = s.data.iter().any(|d| d.id == VICTIM && d.state == "down");
        if started.is_none() && down && (bytes > 0 || s.rebuilds_pending > 0) {
            started = Some(Instant::now());
        }
        if let Some(t) = started {
            if s.rebuilds_pending == 0 && bytes > 0 {
                return Ok((bytes, t.elapsed().as_secs_f64().max(1e-3)));
            }
        }
        if Instant::now() > deadline {
            bail!("rebuild did not finish in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
