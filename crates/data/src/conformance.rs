//! The conformance suite every [`ShardStore`] must pass.
//!
//! A backend provides a [`Harness`] (how to open it on a directory and how to
//! damage a stored shard on disk) and instantiates the suite with
//! `conformance_tests!(MyHarness)`, which generates one `#[test]` per case.
//! The crash cases (kill -9 mid-append, a torn last write, a failed sync, a
//! full disk) are in `conformance_crash.rs`.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shardline_types::ShardKey;

pub(crate) use crate::conformance_crash::Tear;
use crate::segment_store::FaultyIo;
use crate::{DataError, ShardStore};

/// How the suite drives one backend.
pub(crate) trait Harness {
    type Store: ShardStore;
    /// Open (or reopen) the store kept under `dir`.
    fn open(dir: &Path, capacity_bytes: Option<u64>) -> Self::Store;
    /// Flip one payload byte of `key`'s shard on disk, behind the store's back.
    fn flip_payload_byte(dir: &Path, key: &ShardKey);
    /// The backend's name in reports ("file", "io_uring O_DIRECT", ...).
    const NAME: &'static str;
    /// Damage `key`'s shard, the newest write, as a crash during it might.
    fn tear_last_write(dir: &Path, key: &ShardKey, tear: Tear);
    /// Open through a disk seam that fails on demand, if the backend has one.
    fn open_faulty(_dir: &Path, _io: Arc<FaultyIo>) -> Option<Self::Store> {
        None
    }
    /// Why the backend cannot run on this machine, if it cannot (the suite
    /// is then skipped loudly, or fails under `SHARDLINE_REQUIRE_IO_URING=1`).
    fn unavailable() -> Option<String> {
        None
    }
}

/// Environment variable that turns a skipped io_uring backend into a test
/// failure. `tools/test` sets it to 1 unless it is already set, so the
/// default backend is never silently untested.
pub(crate) const REQUIRE_IO_URING: &str = "SHARDLINE_REQUIRE_IO_URING";

/// Say on the real stderr (not libtest's captured output, so it shows in
/// every run) what happened to a backend's conformance suite.
pub(crate) fn announce(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A backend that cannot run here: fail when it is required, else skip
/// loudly.
pub(crate) fn skip_or_fail(backend: &str, case: &str, why: &str, required: bool) {
    if required {
        panic!(
            "store backend {backend} cannot run on this machine ({why}) and {REQUIRE_IO_URING}=1; \
             set {REQUIRE_IO_URING}=0 to skip it knowingly"
        );
    }
    announce(&format!("SKIPPED store backend {backend}, conformance case {case}: {why} (this backend was NOT tested)"));
}

/// Whether the environment requires io_uring backends to run.
pub(crate) fn io_uring_required() -> bool {
    std::env::var(REQUIRE_IO_URING).is_ok_and(|v| v == "1")
}

pub(crate) fn key(file_id: u64, shard_index: u32) -> ShardKey {
    ShardKey { file_id, chunk_index: 2, version: 3, shard_index }
}

pub(crate) fn payload(seed: u8, len: usize) -> (Vec<u8>, u32) {
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    let crc = crc32c::crc32c(&data);
    (data, crc)
}

/// Flip one bit of the byte at `at` in the file at `path`, durably.
pub(crate) fn flip_byte_at(path: &Path, at: u64) {
    let mut f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x40]).unwrap();
    f.sync_all().unwrap();
}

/// Damage the file at `path` as a crash tearing a write of the `len`
/// payload bytes at `payload_at` might (the file-per-shard stores; the
/// segment store's harness does the same on its segment).
pub(crate) fn tear_file(path: &Path, payload_at: u64, len: u64, tear: Tear) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    match tear {
        Tear::CutShort => f.set_len(payload_at + len / 2).unwrap(),
        Tear::GarbageAfter => {
            let end = f.metadata().unwrap().len();
            std::os::unix::fs::FileExt::write_all_at(&f, &[0xa5; 1000], end).unwrap();
        }
        Tear::UnwrittenPage => {
            let at = (payload_at + len / 2).next_multiple_of(4096);
            std::os::unix::fs::FileExt::write_all_at(&f, &[0; 4096], at).unwrap();
        }
    }
    f.sync_all().unwrap();
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub(crate) fn put_get_round_trip<H: Harness>(dir: &Path) {
    let s = H::open(dir, None);
    for (i, len) in [0usize, 1, 4096, 1 << 20].into_iter().enumerate() {
        let (data, crc) = payload(i as u8, len);
        s.put(&key(1, i as u32), &data, crc).unwrap();
        assert_eq!(s.get(&key(1, i as u32)).unwrap(), (data, crc), "length {len}");
    }
}

pub(crate) fn overwrite_is_idempotent<H: Harness>(dir: &Path) {
    let s = H::open(dir, None);
    let (data, crc) = payload(7, 5000);
    s.put(&key(1, 0), &data, crc).unwrap();
    let once = s.usage();
    s.put(&key(1, 0), &data, crc).unwrap();
    assert_eq!(s.usage().used_bytes, once.used_bytes);
    assert_eq!(s.usage().shard_count, 1);
    assert_eq!(s.get(&key(1, 0)).unwrap(), (data, crc));
    let (other, other_crc) = payload(8, 100);
    s.put(&key(1, 0), &other, other_crc).unwrap();
    assert_eq!(s.get(&key(1, 0)).unwrap(), (other, other_crc));
    assert_eq!(s.usage().shard_count, 1);
}

pub(crate) fn get_missing_is_not_found<H: Harness>(dir: &Path) {
    let s = H::open(dir, None);
    assert!(matches!(s.get(&key(1, 0)), Err(DataError::NotFound)));
    let (data, crc) = payload(1, 10);
    s.put(&key(1, 0), &data, crc).unwrap();
    assert!(matches!(s.get(&key(1, 1)), Err(DataError::NotFound)));
    assert!(matches!(s.get(&ShardKey { version: 4, ..key(1, 0) }), Err(DataError::NotFound)));
}

pub(crate) fn flipped_byte_is_corrupt<H: Harness>(dir: &Path) {
    let s = H::open(dir, None);
    let (data, crc) = payload(3, 10_000);
    s.put(&key(1, 0), &data, crc).unwrap();
    // A later write, so that the damaged shard is not the newest write (a
    // damaged newest write is a torn write: `a_torn_last_write_...`).
    s.put(&key(1, 1), &data, crc).unwrap();
    H::flip_payload_byte(dir, &key(1, 0));
    assert!(matches!(s.get(&key(1, 0)), Err(DataError::Corrupt(_))));
    // A reopened store must not trust it either.
    drop(s);
    assert!(matches!(H::open(dir, None).get(&key(1, 0)), Err(DataError::Corrupt(_))));
}

pub(crate) fn wrong_crc_is_refused<H: Harness>(dir: &Path) {
    let s = H::open(dir, None);
    let (data, crc) = payload(4, 2000);
    let before = s.usage();
    let err = s.put(&key(1, 0), &data, crc ^ 1).unwrap_err();
    assert!(matches!(err, DataError::ChecksumMismatch { .. }), "{err}");
    assert!(matches!(s.get(&key(1, 0)), Err(DataError::NotFound)));
    assert_eq!(s.list().unwrap(), vec![]);
    assert_eq!(s.usage().used_bytes, before.used_bytes);
    assert_eq!(s.usage().shard_count, 0);
    // An existing shard survives a refused overwrite.
    s.put(&key(1, 0), &data, crc).unwrap();
    let (other, other_crc) = payload(5, 2000);
    assert!(s.put(&key(1, 0), &other, other_crc.wrapping_add(1)).is_err());
    assert_eq!(s.get(&key(1, 0)).unwrap(), (data, crc));
}

pub(crate) fn delete_removes<H: Harness>(dir: &Path) {
    let s = H::open(dir, None);
    let (data, crc) = payload(6, 300);
    s.put(&key(1, 0), &data, crc).unwrap();
    s.put(&key(1, 1), &data, crc).unwrap();
    assert!(s.delete(&key(1, 0)).unwrap());
    assert!(!s.delete(&key(1, 0)).unwrap());
    assert!(!s.delete(&key(9, 9)).unwrap());
    assert!(matches!(s.get(&key(1, 0)), Err(DataError::NotFound)));
    assert_eq!(s.get(&key(1, 1)).unwrap(), (data, crc));
}

pub(crate) fn list_returns_sorted_keys<H: Harness>(dir: &Path) {
    let s = H::open(dir, None);
    assert_eq!(s.list().unwrap(), vec![]);
    let mut want = Vec::new();
    for f in (0..20u64).rev() {
        let k = ShardKey { file_id: f, chunk_index: f * 7, version: 1, shard_index: (f % 6) as u32 };
        let (data, crc) = payload(f as u8, 64);
        s.put(&k, &data, crc).unwrap();
        want.push(k);
    }
    want.sort();
    assert_eq!(s.list().unwrap(), want);
    s.delete(&want[3]).unwrap();
    want.remove(3);
    assert_eq!(s.list().unwrap(), want);
}

pub(crate) fn usage_counts<H: Harness>(dir: &Path) {
    let s = H::open(dir, None);
    let empty = s.usage();
    assert_eq!((empty.used_bytes, empty.shard_count), (0, 0));
    assert!(empty.capacity_bytes > 0);
    let (a, a_crc) = payload(1, 1000);
    let (b, b_crc) = payload(2, 3000);
    s.put(&key(1, 0), &a, a_crc).unwrap();
    s.put(&key(1, 1), &b, b_crc).unwrap();
    let two = s.usage();
    assert_eq!(two.shard_count, 2);
    assert!(two.used_bytes >= 4000, "{two:?}");
    assert!(two.capacity_bytes >= two.used_bytes);
    s.delete(&key(1, 1)).unwrap();
    let one = s.usage();
    assert_eq!(one.shard_count, 1);
    assert!(one.used_bytes >= 1000 && one.used_bytes < two.used_bytes, "{one:?}");
    s.delete(&key(1, 0)).unwrap();
    assert_eq!((s.usage().used_bytes, s.usage().shard_count), (0, 0));
}

pub(crate) fn capacity_limit_is_no_space<H: Harness>(dir: &Path) {
    let cap = 10_000;
    let s = H::open(dir, Some(cap));
    assert_eq!(s.usage().capacity_bytes, cap);
    let (data, crc) = payload(1, 3000);
    let mut stored = 0;
    let err = loop {
        match s.put(&key(1, stored), &data, crc) {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 10, "capacity never enforced");
    };
    assert!(matches!(err, DataError::NoSpace { .. }), "{err}");
    assert!(stored >= 1, "a 3000-byte shard should fit in {cap} bytes");
    let full = s.usage();
    assert!(full.used_bytes <= cap);
    assert_eq!(full.shard_count, u64::from(stored));
    assert!(matches!(s.get(&key(1, stored)), Err(DataError::NotFound)));
    assert_eq!(s.list().unwrap().len(), stored as usize);
    // Overwriting in place needs no extra room; deleting frees room.
    s.put(&key(1, 0), &data, crc).unwrap();
    s.delete(&key(1, 0)).unwrap();
    s.put(&key(1, stored), &data, crc).unwrap();
    assert_eq!(s.get(&key(1, stored)).unwrap(), (data, crc));
}

pub(crate) fn reopen_sees_existing_shards<H: Harness>(dir: &Path) {
    let (data, crc) = payload(9, 7777);
    let before = {
        let s = H::open(dir, None);
        for i in 0..5 {
            s.put(&key(2, i), &data, crc).unwrap();
        }
        s.delete(&key(2, 4)).unwrap();
        s.usage()
    };
    let s = H::open(dir, None);
    let after = s.usage();
    assert_eq!((after.used_bytes, after.shard_count), (before.used_bytes, before.shard_count));
    assert_eq!(s.list().unwrap(), (0..4).map(|i| key(2, i)).collect::<Vec<_>>());
    for i in 0..4 {
        assert_eq!(s.get(&key(2, i)).unwrap(), (data.clone(), crc));
    }
}

/// Generate one `#[test]` per conformance case for a [`Harness`].
macro_rules! conformance_tests {
    ($harness:ty) => {
        $crate::conformance::conformance_tests!(@cases $harness;
            put_get_round_trip, overwrite_is_idempotent, get_missing_is_not_found,
            flipped_byte_is_corrupt, wrong_crc_is_refused, delete_removes,
            list_returns_sorted_keys, usage_counts, capacity_limit_is_no_space,
            reopen_sees_existing_shards;
            a_torn_last_write_loses_nothing_else, a_failed_sync_is_not_acknowledged,
            a_full_disk_is_no_space_and_stores_nothing);
    };
    (@cases $harness:ty; $($case:ident),* ; $($crash:ident),* $(,)?) => {
        mod conformance {
            use super::*;
            /// Says which backend this suite covered, or that it did not run.
            #[test]
            fn backend_report() {
                let name = <$harness as $crate::conformance::Harness>::NAME;
                match <$harness as $crate::conformance::Harness>::unavailable() {
                    None => $crate::conformance::announce(&format!("store backend {name}: conformance suite ran")),
                    Some(why) => $crate::conformance::skip_or_fail(
                        name, "all", &why, $crate::conformance::io_uring_required()),
                }
            }

            /// The process the kill -9 case starts and kills (a no-op
            /// when run otherwise).
            #[test]
            fn crash_child() {
                $crate::conformance_crash::crash_child::<$harness>();
            }

            #[test]
            fn kill_9_mid_append_loses_no_acknowledged_put() {
                if let Some(why) = <$harness as $crate::conformance::Harness>::unavailable() {
                    let name = <$harness as $crate::conformance::Harness>::NAME;
                    $crate::conformance::skip_or_fail(
                        name, "kill_9_mid_append", &why, $crate::conformance::io_uring_required());
                    return;
                }
                let dir = tempfile::tempdir().unwrap();
                // libtest names tests by module path without the crate.
                let here = module_path!();
                let child = format!("{}::crash_child", here.split_once("::").map_or(here, |(_, rest)| rest));
                $crate::conformance_crash::kill_9_mid_append_loses_no_acknowledged_put::<$harness>(dir.path(), &child);
            }
            $(
                #[test]
                fn $crash() {
                    if let Some(why) = <$harness as $crate::conformance::Harness>::unavailable() {
                        let name = <$harness as $crate::conformance::Harness>::NAME;
                        $crate::conformance::skip_or_fail(
                            name, stringify!($crash), &why, $crate::conformance::io_uring_required());
                        return;
                    }
                    let dir = tempfile::tempdir().unwrap();
                    $crate::conformance_crash::$crash::<$harness>(dir.path());
                }
            )*
            $(
                #[test]
                fn $case() {
                    if let Some(why) = <$harness as $crate::conformance::Harness>::unavailable() {
                        let name = <$harness as $crate::conformance::Harness>::NAME;
                        $crate::conformance::skip_or_fail(
                            name, stringify!($case), &why, $crate::conformance::io_uring_required());
                        return;
                    }
                    let dir = tempfile::tempdir().unwrap();
                    $crate::conformance::$case::<$harness>(dir.path());
                }
            )*
        }
    };
}
pub(crate) use conformance_tests;

#[cfg(test)]
mod skip_tests {
    #[test]
    #[should_panic(expected = "cannot run on this machine")]
    fn an_unavailable_io_uring_fails_the_suite_when_required() {
        super::skip_or_fail("io_uring O_DIRECT", "put_get_round_trip", "io_uring_setup: ENOSYS", true);
    }

    #[test]
    fn an_unavailable_backend_is_skipped_loudly_when_not_required() {
        super::skip_or_fail("(none: this tests the skip notice)", "-", "an example reason", false);
    }
}
