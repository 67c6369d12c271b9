//! copy_file_range(2) inside the mount: the bytes go from one open file to
//! the other through this mount's handles (read, decrypted, re-encrypted
//! and written by the client) without crossing into the kernel and back,
//! as they do when the kernel falls back to reading and writing. `cp`
//! (coreutils 9) and Python's `shutil.copyfile` ask for it first.

use crate::fs::{OpResult, ShardlineFs};

/// Bytes copied by one call at most; the caller asks again for the rest
/// (a short copy is not an error).
const COPY_MAX: u64 = 64 << 20;
/// Bytes read and written at a time.
const PIECE: u64 = 4 << 20;

/// Where a copy reads and writes.
pub(crate) struct CopyRange {
    pub ino_in: u64,
    pub offset_in: u64,
    pub ino_out: u64,
    pub fh_out: u64,
    pub offset_out: u64,
    pub len: u64,
}

impl ShardlineFs {
    /// Copy up to `len` bytes (at most [`COPY_MAX`]); fewer at the end of
    /// the input, 0 past it. The kernel has checked the handles' modes, the
    /// ranges (no overlap within one file) and that the output is not
    /// opened for appending, and it drops its cached pages of the output's
    /// range when this returns.
    pub(crate) async fn op_copy_range(&self, c: CopyRange) -> OpResult<u64> {
        let want = c.len.min(COPY_MAX);
        let mut done = 0;
        while done < want {
            let piece = (want - done).min(PIECE);
            let data = self.op_read(c.ino_in, c.offset_in + done, piece as u32).await?;
            if data.is_empty() {
                break;
            }
            self.op_write(c.ino_out, c.fh_out, c.offset_out + done, &data, 0).await?;
            done += data.len() as u64;
            if (data.len() as u64) < piece {
                break;
            }
        }
        Ok(done)
    }
}
