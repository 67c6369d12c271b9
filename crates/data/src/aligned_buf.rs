//! Heap buffers aligned for `O_DIRECT`: address and length multiples of
//! [`ALIGN`].

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::DataError;

/// Alignment of `O_DIRECT` buffers, offsets and lengths (covers 512-byte and
/// 4 KiB logical blocks).
pub(crate) const ALIGN: usize = 4096;

/// A zero-initialised, [`ALIGN`]-aligned heap buffer whose length is a
/// positive multiple of [`ALIGN`].
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: an `AlignedBuf` uniquely owns its allocation, like a `Box<[u8]>`.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of at least `len` bytes (rounded up to [`ALIGN`], and
    /// at least one block).
    pub(crate) fn zeroed(len: usize) -> Result<AlignedBuf, DataError> {
        let size = len
            .max(1)
            .checked_next_multiple_of(ALIGN)
            .ok_or_else(|| DataError::InvalidArgument("buffer too large".into()))?;
        let layout =
            Layout::from_size_align(size, ALIGN).map_err(|_| DataError::InvalidArgument("buffer too large".into()))?;
        // SAFETY: `layout` has a non-zero size (at least ALIGN).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| DataError::Internal(format!("cannot allocate {size} bytes")))?;
        Ok(AlignedBuf { ptr, layout })
    }

    /// The length in bytes (a multiple of [`ALIGN`]).
    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len()` initialised (zeroed at allocation)
        // bytes owned by `self`, borrowed shared for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` and is
        // freed exactly once, here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_aligned_zeroed_and_rounded_up() {
        for (want, len) in [(0, 4096), (1, 4096), (4096, 4096), (4097, 8192), (1 << 20, 1 << 20)] {
            let mut b = AlignedBuf::zeroed(want).unwrap();
            assert_eq!(b.len(), len);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert!(b.as_slice().iter().all(|&x| x == 0));
            b.as_mut_slice()[len - 1] = 7;
            assert_eq!(b.as_slice()[len - 1], 7);
        }
        assert!(AlignedBuf::zeroed(usize::MAX - 10).is_err());
    }
}
