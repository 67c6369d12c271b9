//! The `shardline` Python package's native module, `shardline._native`:
//! the Rust client (`shardline-client`) behind PyO3 (abi3, CPython >= 3.11).
//!
//! The Python sources beside it (`python/shardline/`) wrap these classes in
//! the public API: `shardline.connect`, `Client` (file objects, fsspec,
//! datasets). Here: [`conn`] (a connection per process, made afresh after a
//! fork), [`client`] (namespace operations, reads, `put`/`get`), [`reader`]
//! (positional reads and `readinto` into the caller's buffer), [`writer`]
//! (files written in a stream), [`prefetch`]
//! (the client's prefetch stream as an iterator), [`errors`] (client errors
//! as `OSError` subclasses), [`bench`] (the native side of the loader
//! benchmark). Every call releases the GIL while it waits on the cluster.

mod bench;
mod client;
mod conn;
mod errors;
mod prefetch;
mod reader;
mod writer;

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::client::PyClient;

/// Connect to the cluster `cluster_file` (a `cluster.toml` as `shardline up`
/// writes it): load its key, fetch the placement map.
#[pyfunction]
#[pyo3(signature = (cluster_file, read_parallelism = None, threads = None))]
fn connect(
    py: Python<'_>,
    cluster_file: PathBuf,
    read_parallelism: Option<usize>,
    threads: Option<usize>,
) -> PyResult<PyClient> {
    let spec = conn::Spec::load(&cluster_file, read_parallelism, threads)?;
    py.detach(|| PyClient::new(spec))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(bench::bench_read, m)?)?;
    m.add_class::<PyClient>()?;
    m.add_class::<reader::PyReader>()?;
    m.add_class::<prefetch::PyPrefetch>()?;
    m.add_class::<writer::PyWriter>()?;
    Ok(())
}
