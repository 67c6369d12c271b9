//! Client errors as Python exceptions: `OSError(errno, message, path)`,
//! which Python turns into its errno subclasses itself
//! (`FileNotFoundError` for ENOENT, `PermissionError` for EACCES,
//! `IsADirectoryError`, `NotADirectoryError`, `FileExistsError`...); EIO for
//! unavailable or corrupt data.

use std::path::Path;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use shardline_client::ClientError;

/// EIO, for local errors that carry no errno.
const EIO: i32 = 5;

/// `e` as an `OSError` subclass; `path` becomes its `filename`.
pub fn client_err(e: ClientError, path: Option<&Path>) -> PyErr {
    os_error(e.code().errno(), e.to_string(), path)
}

/// A local I/O error (reading the cluster file, `put`/`get` local files).
pub fn io_err(e: std::io::Error, path: &Path) -> PyErr {
    os_error(e.raw_os_error().unwrap_or(EIO), e.to_string(), Some(path))
}

fn os_error(errno: i32, msg: String, path: Option<&Path>) -> PyErr {
    match path {
        Some(p) => PyOSError::new_err((errno, msg, p.to_string_lossy().into_owned())),
        None => PyOSError::new_err((errno, msg)),
    }
}

pub fn bad_arg(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// Using an object made before a fork in the child.
pub fn forked(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "this {what} was made in another process (before a fork); make a new one in this process"
    ))
}
