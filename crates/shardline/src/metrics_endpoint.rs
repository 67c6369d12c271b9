//! `--metrics-listen ADDR` for servers and mounts: start the process's
//! `/metrics` endpoint and, for servers, write the address it bound to
//! `DIR/metrics.addr` (so port 0 works and tools find it).

use std::path::Path;

use anyhow::{Context, Result};
use shardline_metrics::MetricsServer;

/// The file in a server's folder naming its metrics address.
pub const ADDR_FILE: &str = "metrics.addr";

/// Start the endpoint when asked; the caller keeps it alive.
pub fn start(listen: Option<&str>, dir: Option<&Path>) -> Result<Option<MetricsServer>> {
    let Some(listen) = listen else { return Ok(None) };
    let server = MetricsServer::start(listen).with_context(|| format!("serve metrics on {listen}"))?;
    tracing::info!(addr = %server.addr(), "serving Prometheus metrics at /metrics");
    if let Some(dir) = dir {
        let path = dir.join(ADDR_FILE);
        std::fs::write(&path, format!("{}\n", server.addr())).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(Some(server))
}
