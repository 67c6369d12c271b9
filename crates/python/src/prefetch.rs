//! `shardline._native.Prefetch`: the native prefetch stream
//! (`shardline_client::prefetch`) as a Python iterator of
//! `(index, bytes)`, in the order given, with the GIL released while it
//! waits. A failed item raises its error from `__next__` (the stream goes
//! on with the next item when iterated again), or with
//! `raise_errors=False` is yielded as `(index, exception)`.
//!
//! Each item is read into a native buffer (`Prefetch::next_buf`) and copied
//! once into its `bytes`; the buffer then goes back to the stream
//! (`Prefetch::recycle`, at the next `__next__`) for a later item, so a
//! stream allocates no native buffers once it has a window's worth.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use shardline_client::{Prefetch, PrefetchConfig, PrefetchItem};

use crate::conn::Conn;
use crate::errors::{bad_arg, client_err, forked};

/// Items from Python: a path (str, bytes or os.PathLike) is a whole file,
/// a `(path, offset, length)` tuple a range.
pub fn items_from_py(items: &Bound<'_, PyAny>) -> PyResult<Vec<PrefetchItem>> {
    let mut out = Vec::new();
    for obj in items.try_iter()? {
        let obj = obj?;
        if let Ok(t) = obj.cast::<PyTuple>() {
            if t.len() != 3 {
                return Err(bad_arg("a range item is a (path, offset, length) tuple"));
            }
            let path: PathBuf = t.get_item(0)?.extract()?;
            out.push(PrefetchItem::Range { path, offset: t.get_item(1)?.extract()?, len: t.get_item(2)?.extract()? });
        } else if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__")? || obj.is_instance_of::<PyBytes>() {
            out.push(PrefetchItem::File(obj.extract()?));
        } else {
            return Err(bad_arg("an item is a path or a (path, offset, length) tuple"));
        }
    }
    Ok(out)
}

#[pyclass(name = "Prefetch", module = "shardline._native", frozen)]
pub struct PyPrefetch {
    conn: Arc<Conn>,
    stream: Arc<tokio::sync::Mutex<Prefetch>>,
    total: usize,
    raise_errors: bool,
    taken: Mutex<usize>,
    /// The last item's native buffer, recycled at the next `__next__`.
    spare: Mutex<Option<Vec<u8>>>,
}

impl PyPrefetch {
    pub fn start(
        conn: Arc<Conn>,
        items: Vec<PrefetchItem>,
        window: usize,
        window_bytes: u64,
        raise_errors: bool,
    ) -> PyResult<PyPrefetch> {
        if window == 0 || window_bytes == 0 {
            return Err(bad_arg("window and window_bytes must be positive"));
        }
        let total = items.len();
        let cfg = PrefetchConfig { window_items: window, window_bytes, ..PrefetchConfig::default() };
        let stream = conn.client().prefetch(items, cfg);
        Ok(PyPrefetch {
            conn,
            stream: Arc::new(tokio::sync::Mutex::new(stream)),
            total,
            raise_errors,
            taken: Mutex::new(0),
            spare: Mutex::new(None),
        })
    }
}

#[pymethods]
impl PyPrefetch {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<(usize, Bound<'py, PyAny>)>> {
        if !self.conn.is_current() {
            return Err(forked("prefetch stream"));
        }
        let stream = self.stream.clone();
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
        let got = self.conn.run(py, async move {
            let mut stream = stream.lock().await;
            if let Some(buf) = spare {
                stream.recycle(buf);
            }
            stream.next_buf().await
        });
        let Some(got) = got else {
            return Ok(None);
        };
        *self.taken.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        match got.data {
            Ok(buf) => {
                let bytes = PyBytes::new(py, &buf).into_any();
                *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = Some(buf);
                Ok(Some((got.index, bytes)))
            }
            Err(e) => {
                let err = client_err(e, Some(got.item.path()));
                if self.raise_errors {
                    Err(err)
                } else {
                    Ok(Some((got.index, err.into_value(py).into_bound(py).into_any())))
                }
            }
        }
    }

    fn __len__(&self) -> usize {
        self.total
    }

    /// Items not yet taken.
    #[getter]
    fn remaining(&self) -> usize {
        self.total - *self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most the stream has held at once: `(items, bytes)`.
    fn stats(&self, py: Python<'_>) -> PyResult<(usize, u64)> {
        let stream = self.stream.clone();
        let s = self.conn.run(py, async move { stream.lock().await.stats() });
        Ok((s.max_items, s.max_bytes))
    }
}
