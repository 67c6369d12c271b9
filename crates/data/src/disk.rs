//! Small POSIX helpers: durable file creation, directory fsync, free space.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::DataError;

/// Create `tmp` (which must not exist), write `parts` to it and fsync it.
/// The caller renames it into place and removes it on failure.
pub(crate) fn write_new_file(tmp: &Path, parts: &[&[u8]]) -> Result<(), DataError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| write_err("create temporary shard file", e))?;
    for part in parts {
        f.write_all(part).map_err(|e| write_err("write shard file", e))?;
    }
    f.sync_all().map_err(|e| write_err("sync shard file", e))
}

/// Make a directory's entries (creations, renames, removals) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), DataError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| DataError::io("sync shard directory", e))
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub(crate) fn available_bytes(path: &Path) -> Result<u64, DataError> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| DataError::Config("data directory path contains a NUL byte".into()))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the
    // call, and `st` points to writable memory sized for a `statvfs`.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(DataError::io("query file system free space", io::Error::last_os_error()));
    }
    // SAFETY: statvfs returned 0, so it initialised every field of `st`.
    let st = unsafe { st.assume_init() };
    // The field widths differ between platforms.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let (blocks, frsize) = (st.f_bavail as u64, st.f_frsize as u64);
    Ok(blocks.saturating_mul(frsize))
}

/// Map a write-path I/O error, turning a full disk into [`DataError::NoSpace`].
pub(crate) fn write_err(context: &'static str, e: io::Error) -> DataError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        DataError::NoSpace { needed: 0, available: 0 }
    } else {
        DataError::io(context, e)
    }
}
