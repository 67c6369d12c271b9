//! [`UringThread`] tests: errors, end of file, and a queue far deeper than
//! the ring.

use std::fs::OpenOptions;
use std::sync::Arc;

use super::*;

fn thread(entries: u32) -> Option<UringThread> {
    match UringThread::start(entries) {
        Ok(t) => Some(t),
        Err(e @ DataError::Config(_)) => {
            let why = e.chain();
            crate::conformance::skip_or_fail(
                "io_uring",
                "ring thread test",
                &why,
                crate::conformance::io_uring_required(),
            );
            None
        }
        Err(e) => panic!("{}", e.chain()),
    }
}

#[test]
fn unavailable_io_uring_is_a_config_error() {
    for errno in [libc::ENOSYS, libc::EPERM] {
        let e = setup_error(io::Error::from_raw_os_error(errno));
        assert!(matches!(&e, DataError::Config(m) if m.contains("io_uring is unavailable")), "{}", e.chain());
    }
    assert!(matches!(setup_error(io::Error::from_raw_os_error(libc::ENOMEM)), DataError::Io { .. }));
}

#[test]
fn read_stops_at_end_of_file_and_errors_come_back() {
    let Some(ring) = thread(8) else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, vec![5u8; 5000]).unwrap();
    let file = File::open(&path).unwrap();
    let buf = AlignedBuf::zeroed(3 * 4096).unwrap();
    let done = ring.run(Op::Read { file, buf, offset: 0, want: 3 * 4096 }).unwrap();
    assert_eq!(done.result.unwrap(), 5000);
    let buf = done.buf.unwrap();
    assert!(buf.as_slice()[..5000].iter().all(|&b| b == 5));
    // Writing through a read-only descriptor fails with EBADF.
    let done = ring.run(Op::Write { file: done.file, buf, offset: 0 }).unwrap();
    assert_eq!(done.result.unwrap_err().raw_os_error(), Some(libc::EBADF));
}

#[test]
fn many_more_requests_than_ring_entries_all_complete() {
    let Some(ring) = thread(4) else { return };
    let ring = Arc::new(ring);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let workers: Vec<_> = (0..64u8)
        .map(|t| {
            let (ring, dir) = (ring.clone(), dir.clone());
            std::thread::spawn(move || {
                for round in 0..4u8 {
                    let path = dir.path().join(format!("{t}.{round}"));
                    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
                    let mut buf = AlignedBuf::zeroed(8192).unwrap();
                    buf.as_mut_slice().fill(t ^ round);
                    let done = ring.run(Op::Write { file, buf, offset: 0 }).unwrap();
                    assert_eq!(done.result.unwrap(), 8192);
                    let done = ring.run(Op::Fsync { file: done.file }).unwrap();
                    assert_eq!(done.result.unwrap(), 0);
                    let buf = AlignedBuf::zeroed(8192).unwrap();
                    let done = ring.run(Op::Read { file: done.file, buf, offset: 0, want: 8192 }).unwrap();
                    assert_eq!(done.result.unwrap(), 8192);
                    assert!(done.buf.unwrap().as_slice().iter().all(|&b| b == t ^ round));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
