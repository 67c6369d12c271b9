//! `shardline._native.bench_read`: the native client's side of
//! `tools/bench-python`. The same prefetch streams the Python package
//! iterates, driven entirely in Rust (no Python per item), so the bench can
//! show what the Python layer costs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pyo3::prelude::*;
use shardline_client::{ClientError, PrefetchConfig};

use crate::client::PyClient;
use crate::errors::client_err;
use crate::prefetch::items_from_py;

/// Read every share (a list of items each) concurrently, one prefetch
/// stream per share with the given window; returns `(bytes, items, seconds)`.
#[pyfunction]
#[pyo3(signature = (client, shares, window = 16, window_bytes = 64 << 20))]
pub fn bench_read(
    py: Python<'_>,
    client: &PyClient,
    shares: &Bound<'_, PyAny>,
    window: usize,
    window_bytes: u64,
) -> PyResult<(u64, u64, f64)> {
    let shares = shares.try_iter()?.map(|s| items_from_py(&s?)).collect::<PyResult<Vec<_>>>()?;
    let conn = client.session.conn()?;
    let native = conn.client().clone();
    let bytes = Arc::new(AtomicU64::new(0));
    let items = Arc::new(AtomicU64::new(0));
    let (b, n) = (bytes.clone(), items.clone());
    let start = Instant::now();
    conn.run(py, async move {
        let mut tasks = Vec::new();
        for share in shares {
            let cfg =
                PrefetchConfig { window_items: window.max(1), window_bytes: window_bytes.max(1), ..Default::default() };
            let mut stream = native.prefetch(share, cfg);
            let (b, n) = (b.clone(), n.clone());
            tasks.push(tokio::spawn(async move {
                while let Some(got) = stream.next_buf().await {
                    let buf = got.data?;
                    b.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    n.fetch_add(1, Ordering::Relaxed);
                    stream.recycle(buf);
                }
                Ok::<(), ClientError>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| ClientError::Internal(format!("bench task: {e}")))??;
        }
        Ok::<(), ClientError>(())
    })
    .map_err(|e| client_err(e, None))?;
    Ok((bytes.load(Ordering::Relaxed), items.load(Ordering::Relaxed), start.elapsed().as_secs_f64()))
}
