//! `shardline._native.Writer`: a file written in a stream (for fsspec's
//! `open(..., "wb")`). Bytes are gathered into chunks and sent as they fill
//! (the client keeps several chunks in flight); `close` commits and renames
//! the file into place atomically. A writer made before a fork refuses to
//! be used in the child.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use shardline_client::{ClientError, FileWriter};

use crate::conn::{Conn, Session};
use crate::errors::{client_err, forked};

#[pyclass(name = "Writer", module = "shardline._native", frozen)]
pub struct PyWriter {
    conn: Arc<Conn>,
    path: PathBuf,
    writer: Arc<tokio::sync::Mutex<Option<FileWriter>>>,
}

impl PyWriter {
    pub fn create(py: Python<'_>, session: &Session, path: PathBuf) -> PyResult<PyWriter> {
        let conn = session.conn()?;
        let w = conn.run(py, conn.client().create(&path)).map_err(|e| client_err(e, Some(&path)))?;
        Ok(PyWriter { conn, path, writer: Arc::new(tokio::sync::Mutex::new(Some(w))) })
    }
}

fn closed() -> ClientError {
    ClientError::Internal("write to a closed file".into())
}

#[pymethods]
impl PyWriter {
    /// Append `data`; returns its length.
    fn write(&self, py: Python<'_>, data: &[u8]) -> PyResult<usize> {
        if !self.conn.is_current() {
            return Err(forked("writer"));
        }
        let writer = self.writer.clone();
        let n = data.len();
        self.conn
            .run(py, async move { writer.lock().await.as_mut().ok_or_else(closed)?.write(data).await })
            .map_err(|e| client_err(e, Some(&self.path)))?;
        Ok(n)
    }

    /// Commit everything written and rename the file into place; returns
    /// its size. Closing twice is a no-op (returns 0).
    fn close(&self, py: Python<'_>) -> PyResult<u64> {
        if !self.conn.is_current() {
            return Err(forked("writer"));
        }
        let writer = self.writer.clone();
        self.conn
            .run(py, async move {
                match writer.lock().await.take() {
                    Some(w) => w.finish().await,
                    None => Ok(0),
                }
            })
            .map_err(|e| client_err(e, Some(&self.path)))
    }

    /// Drop what was written without creating the file (its temporary
    /// file is removed in the background).
    fn abort(&self) {
        if !self.conn.is_current() {
            return;
        }
        if let Ok(mut w) = self.writer.try_lock() {
            self.conn.drop_inside(w.take());
        }
    }
}

impl Drop for PyWriter {
    /// A writer dropped without `close` is aborted.
    fn drop(&mut self) {
        if self.conn.is_current() {
            if let Ok(mut w) = self.writer.try_lock() {
                self.conn.drop_inside(w.take());
            }
        }
    }
}
