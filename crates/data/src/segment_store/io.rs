//! The seam between the segment writer and the disk: how a batch is
//! written and made durable. [`OsIo`] does it for real; tests substitute
//! [`FaultyIo`] to make a sync or a write fail on demand.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

/// How the writer writes and syncs segment files.
pub trait SegmentIo: Send + Sync + 'static {
    /// Write all of `bufs`, back to back, at `offset`.
    fn write_at(&self, file: &File, bufs: &[&[u8]], offset: u64) -> io::Result<()>;
    /// Make the file's data (and the metadata needed to read it) durable.
    fn sync_data(&self, file: &File) -> io::Result<()>;
}

/// The real thing: `pwritev` and `fdatasync`.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsIo;

impl SegmentIo for OsIo {
    fn write_at(&self, file: &File, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        pwritev_all(file, bufs, offset)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}

/// At most this many buffers per `pwritev` call (POSIX guarantees 16; Linux
/// takes 1024).
const MAX_IOVECS: usize = 1024;

/// Write every buffer, in order, at `offset`, resuming short writes.
pub(crate) fn pwritev_all(file: &File, bufs: &[&[u8]], mut offset: u64) -> io::Result<()> {
    let mut bufs: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    let mut first = 0;
    while first < bufs.len() {
        let iov: Vec<libc::iovec> = bufs[first..(first + MAX_IOVECS).min(bufs.len())]
            .iter()
            .map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() })
            .collect();
        let off = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: every iovec points into a slice borrowed by `bufs` for the
        // whole call, with its exact length; pwritev only reads them.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int, off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        let mut n = n as usize;
        offset += n as u64;
        while n > 0 {
            let b = bufs[first];
            if n >= b.len() {
                n -= b.len();
                first += 1;
            } else {
                bufs[first] = &b[n..];
                n = 0;
            }
        }
    }
    Ok(())
}

/// Read exactly `bufs`' lengths, back to back, from `offset` (`preadv`).
/// An early end of file is `UnexpectedEof`.
pub(crate) fn preadv_exact(file: &File, bufs: &mut [&mut [u8]], offset: u64) -> io::Result<()> {
    let mut parts: Vec<(*mut u8, usize)> = bufs.iter_mut().map(|b| (b.as_mut_ptr(), b.len())).collect();
    // SAFETY: every part is a distinct slice mutably borrowed by `bufs` for
    // the whole call, with its exact length.
    unsafe { preadv_exact_raw(file, &mut parts, offset) }
}

/// `head.len()` bytes into `head`, then `len` more into a new vector, from
/// `offset`: the vector is filled straight from the file, never zeroed
/// first (it is read whole or not returned).
pub(crate) fn pread_head_and_vec(file: &File, head: &mut [u8], len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut data: Vec<u8> = Vec::with_capacity(len);
    let mut parts = [(head.as_mut_ptr(), head.len()), (data.as_mut_ptr(), len)];
    // SAFETY: `head` is borrowed mutably for the call; `data` owns at least
    // `len` bytes of capacity, which `preadv` only writes to.
    unsafe { preadv_exact_raw(file, &mut parts, offset)? };
    // SAFETY: the call above succeeded, so all `len` bytes were written.
    unsafe { data.set_len(len) };
    Ok(data)
}

/// `lead.len()` bytes into `lead`, `len` more into a new vector (never
/// zeroed first), then `tail.len()` into `tail`, back to back from `offset`.
pub(crate) fn pread_parts_and_vec(
    file: &File,
    lead: &mut [u8],
    len: usize,
    tail: &mut [u8],
    offset: u64,
) -> io::Result<Vec<u8>> {
    let mut data: Vec<u8> = Vec::with_capacity(len);
    let mut parts = [(lead.as_mut_ptr(), lead.len()), (data.as_mut_ptr(), len), (tail.as_mut_ptr(), tail.len())];
    // SAFETY: `lead` and `tail` are borrowed mutably for the call; `data`
    // owns at least `len` bytes of capacity, which `preadv` only writes to.
    unsafe { preadv_exact_raw(file, &mut parts, offset)? };
    // SAFETY: the call above succeeded, so all `len` bytes were written.
    unsafe { data.set_len(len) };
    Ok(data)
}

/// The loop under all three: `parts` are (pointer, length) pairs of writable
/// memory, filled back to back.
///
/// # Safety
/// Every part must point to `len` bytes writable for the whole call, and
/// no two parts may overlap.
unsafe fn preadv_exact_raw(file: &File, parts: &mut [(*mut u8, usize)], mut offset: u64) -> io::Result<()> {
    let mut first = 0;
    let mut done_in_first = 0;
    while first < parts.len() {
        if parts[first].1 == done_in_first {
            first += 1;
            done_in_first = 0;
            continue;
        }
        let mut iov: Vec<libc::iovec> = Vec::with_capacity((parts.len() - first).min(MAX_IOVECS));
        for (i, &(ptr, len)) in parts[first..].iter().enumerate().take(MAX_IOVECS) {
            let skip = if i == 0 { done_in_first } else { 0 };
            iov.push(libc::iovec { iov_base: ptr.add(skip) as *mut libc::c_void, iov_len: len - skip });
        }
        let off = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        let n = libc::preadv(file.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int, off);
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let mut n = n as usize;
        offset += n as u64;
        while n > 0 && first < parts.len() {
            let left = parts[first].1 - done_in_first;
            if n >= left {
                n -= left;
                first += 1;
                done_in_first = 0;
            } else {
                done_in_first += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// [`OsIo`] with failures on demand, for tests of what the store does when
/// the disk fails it.
#[derive(Debug, Default)]
pub struct FaultyIo {
    fail_syncs: AtomicU32,
    enospc_writes: AtomicU32,
    syncs: AtomicU32,
}

impl FaultyIo {
    /// Make the next `n` syncs fail with `EIO` (without syncing).
    pub fn fail_next_syncs(&self, n: u32) {
        self.fail_syncs.store(n, Ordering::SeqCst);
    }

    /// Make the next `n` writes fail with `ENOSPC` after writing half.
    pub fn enospc_next_writes(&self, n: u32) {
        self.enospc_writes.store(n, Ordering::SeqCst);
    }

    /// Syncs that reached the disk so far.
    pub fn syncs(&self) -> u32 {
        self.syncs.load(Ordering::SeqCst)
    }
}

fn take_one(counter: &AtomicU32) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

impl SegmentIo for FaultyIo {
    fn write_at(&self, file: &File, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        if take_one(&self.enospc_writes) {
            // A torn write: the first half of the first buffer lands (in
            // whole 4 KiB blocks, as `O_DIRECT` requires).
            if let Some(b) = bufs.first() {
                pwritev_all(file, &[&b[..(b.len() / 2) & !4095]], offset)?;
            }
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        OsIo.write_at(file, bufs, offset)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        if take_one(&self.fail_syncs) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.syncs.fetch_add(1, Ordering::SeqCst);
        OsIo.sync_data(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_write_and_read_round_trip_across_many_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let parts: Vec<Vec<u8>> = (0..2500).map(|i| vec![(i % 251) as u8; i % 7 + 1]).collect();
        let slices: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        pwritev_all(&file, &slices, 100).unwrap();
        let whole: Vec<u8> = parts.concat();
        assert_eq!(&std::fs::read(&path).unwrap()[100..], &whole[..]);
        let mut a = vec![0u8; 3];
        let mut b = vec![0u8; whole.len() - 3];
        preadv_exact(&file, &mut [&mut a, &mut b], 100).unwrap();
        assert_eq!([a, b].concat(), whole);
        let mut past = vec![0u8; 10];
        let err = preadv_exact(&file, &mut [&mut past], 100 + whole.len() as u64 - 5).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn faulty_io_fails_as_many_times_as_told() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let io = FaultyIo::default();
        io.fail_next_syncs(2);
        assert!(io.sync_data(&file).is_err());
        assert!(io.sync_data(&file).is_err());
        io.sync_data(&file).unwrap();
        assert_eq!(io.syncs(), 1);
        io.enospc_next_writes(1);
        let err = io.write_at(&file, &[b"abcd"], 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        io.write_at(&file, &[b"abcd"], 0).unwrap();
    }
}
