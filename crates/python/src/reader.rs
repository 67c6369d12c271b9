//! `shardline._native.Reader`: positional reads of one file, for the
//! Python file object (`shardline.ShardlineFile`). A snapshot of the file's
//! committed chunks, taken at open; after a fork the child opens the file
//! again on its own connection.
//!
//! `readinto` fills the caller's buffer (a bytearray, memoryview, numpy
//! array... any writable C-contiguous buffer) with the GIL released, through
//! `FileReader::read_into`: the ciphertext is copied into the buffer and
//! decrypted there, in place, on the calling thread, with no intermediate
//! Rust or Python buffer (but for the few cases `read_into` lists: segments
//! only partly inside the range, format v1 chunks, chunks re-read after
//! failing authentication).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shardline_client::FileReader;

use crate::conn::{Conn, Session};
use crate::errors::{bad_arg, client_err};

#[pyclass(name = "Reader", module = "shardline._native", frozen)]
pub struct PyReader {
    session: Arc<Session>,
    path: PathBuf,
    open: Mutex<(Arc<Conn>, FileReader)>,
}

/// A pointer into a Python buffer, kept alive by the caller while the GIL is
/// released.
struct Dest(*mut u8, usize);
// SAFETY: the buffer stays exported (cannot be resized or freed) until the
// `PyUntypedBuffer` holding it is dropped, which happens after the write.
unsafe impl Send for Dest {}

impl Dest {
    /// The buffer's bytes.
    ///
    /// # Safety
    /// `self.0` must point at `self.1 > 0` writable bytes that stay exported
    /// (neither resized nor freed) and that nothing else in Rust touches for
    /// as long as the slice is used.
    unsafe fn into_slice<'a>(self) -> &'a mut [u8] {
        // SAFETY: as the caller promises; a u8 has no alignment or validity
        // requirement beyond the bytes being there.
        unsafe { std::slice::from_raw_parts_mut(self.0, self.1) }
    }
}

impl PyReader {
    pub fn open(py: Python<'_>, session: Arc<Session>, path: PathBuf) -> PyResult<PyReader> {
        let (conn, reader) = open_on(py, &session, &path)?;
        Ok(PyReader { session, path, open: Mutex::new((conn, reader)) })
    }

    /// The reader for this process (reopened after a fork).
    fn current(&self, py: Python<'_>) -> PyResult<(Arc<Conn>, FileReader)> {
        let mut guard = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if !guard.0.is_current() {
            *guard = open_on(py, &self.session, &self.path)?;
        }
        Ok(guard.clone())
    }
}

fn open_on(py: Python<'_>, session: &Session, path: &PathBuf) -> PyResult<(Arc<Conn>, FileReader)> {
    let conn = session.conn()?;
    let reader = conn.run(py, conn.client().open(path)).map_err(|e| client_err(e, Some(path)))?;
    Ok((conn, reader))
}

#[pymethods]
impl PyReader {
    /// The file's size when it was opened.
    #[getter]
    fn size(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.current(py)?.1.size())
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Up to `length` bytes from `offset`.
    fn pread<'py>(&self, py: Python<'py>, offset: u64, length: usize) -> PyResult<Bound<'py, PyBytes>> {
        let (conn, reader) = self.current(py)?;
        let data = conn.run(py, reader.read_at(offset, length)).map_err(|e| client_err(e, Some(&self.path)))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Fill `buffer` from `offset`; returns the bytes written (fewer at the
    /// end of the file, 0 past it).
    fn readinto_at(&self, py: Python<'_>, offset: u64, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buf = PyUntypedBuffer::get(buffer)?;
        if buf.readonly() {
            return Err(PyBufferError::new_err("readinto needs a writable buffer"));
        }
        if !buf.is_c_contiguous() {
            return Err(bad_arg("readinto needs a C-contiguous buffer"));
        }
        let len = buf.len_bytes();
        if len == 0 {
            return Ok(0);
        }
        let dest = Dest(buf.buf_ptr().cast::<u8>(), len);
        let (conn, reader) = self.current(py)?;
        let got = conn.run(py, async move {
            // SAFETY: `buf` (the export of this writable, C-contiguous buffer
            // of `len` > 0 bytes) is dropped only after `run` returns, and
            // `run` returns only once this future has completed or been
            // dropped. `read_into` writes the slice only while it is polled,
            // on the polling thread (no task or blocking-pool job holds it),
            // so no write outlives the future. Python code writing the same
            // buffer from another thread meanwhile races, as with any
            // `readinto` that releases the GIL.
            let out = unsafe { dest.into_slice() };
            reader.read_into(offset, out).await
        });
        drop(buf);
        got.map_err(|e| client_err(e, Some(&self.path)))
    }
}
