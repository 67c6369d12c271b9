//! Crash cases of the conformance suite: what a store must guarantee when
//! the process dies mid-write (kill -9), when a crash tears its last write,
//! when a sync fails and when the disk fills. Every store runs the cases
//! that apply to it: the fault-injection cases need a disk seam
//! ([`Harness::open_faulty`]), which only the segment store has.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use shardline_types::ShardKey;

use crate::conformance::{key, payload, Harness};
use crate::segment_store::FaultyIo;
use crate::{DataError, ShardStore};

/// Set in a child process: the directory it appends to.
const CRASH_DIR_ENV: &str = "SHARDLINE_CONFORMANCE_CRASH_DIR";
/// Appending threads in the child.
const CHILD_THREADS: u64 = 4;
/// Acknowledged puts the parent waits for before the kill.
const ACKS_BEFORE_KILL: usize = 40;

/// How [`Harness::tear_last_write`] damages a write, as a crash might.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tear {
    /// The write stopped halfway through the payload.
    CutShort,
    /// Bytes that were never a record follow it.
    GarbageAfter,
    /// A page in the middle of its payload never reached the disk (zeros).
    UnwrittenPage,
}

/// The shard the child's thread `t` writes `i`-th: varied sizes, up to
/// several CRC blocks, so a kill lands inside large writes too.
fn crash_shard(t: u64, i: u64) -> (ShardKey, Vec<u8>, u32) {
    let len = [1usize, 700, 4096, 70_000, 300_000][(i % 5) as usize];
    let (data, crc) = payload((t * 31 + i) as u8, len);
    (ShardKey { file_id: 1000 + t, chunk_index: i, version: 1, shard_index: t as u32 }, data, crc)
}

/// The child side of the kill -9 case: a no-op unless started by it.
/// Appends from several threads forever, printing `ACK t i` after each put
/// returns.
pub(crate) fn crash_child<H: Harness>() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else { return };
    let store = Arc::new(H::open(Path::new(&dir), None));
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let (k, data, crc) = crash_shard(t, i);
                    store.put(&k, &data, crc).expect("put in the crash child");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {t} {i}").and_then(|()| out.flush()).expect("report an ack");
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// kill -9 a process appending from several threads; every put it
/// acknowledged reads back byte-exact, and nothing torn is visible.
pub(crate) fn kill_9_mid_append_loses_no_acknowledged_put<H: Harness>(dir: &Path, child_test: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([child_test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.strip_prefix("ACK ").into_iter().flat_map(|rest| rest.split(' '));
            if let (Some(t), Some(i)) = (parts.next(), parts.next()) {
                if tx.send((t.parse::<u64>().unwrap(), i.parse::<u64>().unwrap())).is_err() {
                    break;
                }
            }
        }
    });
    let mut acked = Vec::new();
    while acked.len() < ACKS_BEFORE_KILL {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(ack) => acked.push(ack),
            Err(_) => break,
        }
    }
    // SAFETY: kill takes plain integers; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    reader.join().unwrap();
    // Acks printed before the kill and not read yet count too.
    acked.extend(rx.try_iter());
    assert!(acked.len() >= ACKS_BEFORE_KILL, "the child acknowledged only {} puts before dying", acked.len());

    let s = H::open(dir, None);
    for &(t, i) in &acked {
        let (k, data, crc) = crash_shard(t, i);
        match s.get(&k) {
            Ok(got) => assert!(got == (data, crc), "acknowledged put {t}/{i} reads back different bytes"),
            Err(e) => panic!("acknowledged put {t}/{i} lost after kill -9: {e}"),
        }
    }
    // Whatever else is there (a put in flight at the kill) is whole.
    for k in s.list().unwrap() {
        let (data, crc) = s.get(&k).unwrap_or_else(|e| panic!("a shard left by the kill does not read: {e}"));
        let (_, want, want_crc) = crash_shard(u64::from(k.shard_index), k.chunk_index);
        assert!(data == want && crc == want_crc, "a shard left by the kill holds the wrong bytes");
    }
    // And the store goes on.
    let (data, crc) = payload(9, 5000);
    s.put(&key(1, 0), &data, crc).unwrap();
    drop(s);
    assert_eq!(H::open(dir, None).get(&key(1, 0)).unwrap(), (data, crc));
}

/// A crash tore the newest write: every other shard still reads, the torn
/// one reads whole or not at all (never wrong bytes), and writes go on.
pub(crate) fn a_torn_last_write_loses_nothing_else<H: Harness>(dir: &Path) {
    for (round, tear) in [Tear::CutShort, Tear::GarbageAfter, Tear::UnwrittenPage].into_iter().enumerate() {
        let base = 10 * round as u64;
        let shards: Vec<(ShardKey, Vec<u8>, u32)> = [3000usize, 200_000, 150_000]
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let (data, crc) = payload((base + i as u64) as u8, len);
                (key(base + i as u64, 0), data, crc)
            })
            .collect();
        {
            let s = H::open(dir, None);
            for (k, data, crc) in &shards {
                s.put(k, data, *crc).unwrap();
            }
        }
        let (last, ..) = &shards[2];
        H::tear_last_write(dir, last, tear);
        let s = H::open(dir, None);
        for (k, data, crc) in &shards[..2] {
            assert_eq!(s.get(k).unwrap(), (data.clone(), *crc), "{tear:?}: an earlier shard");
        }
        match s.get(last) {
            Ok(got) => assert!(got == (shards[2].1.clone(), shards[2].2), "{tear:?}: the torn shard reads wrong bytes"),
            Err(DataError::NotFound | DataError::Corrupt(_)) => {}
            Err(e) => panic!("{tear:?}: unexpected error {e}"),
        }
        // Writes after the tear survive a restart beside everything else.
        let (data, crc) = payload(77, 10_000);
        let after = key(base + 5, 0);
        s.put(&after, &data, crc).unwrap();
        drop(s);
        let s = H::open(dir, None);
        assert_eq!(s.get(&after).unwrap(), (data, crc), "{tear:?}: a write after the tear");
        for (k, data, crc) in &shards[..2] {
            assert_eq!(s.get(k).unwrap(), (data.clone(), *crc), "{tear:?}: an earlier shard, reopened");
        }
    }
}

/// Open through a failing seam, or say why the case does not apply.
fn faulty<H: Harness>(dir: &Path) -> Option<(H::Store, Arc<FaultyIo>)> {
    let io = Arc::new(FaultyIo::default());
    match H::open_faulty(dir, io.clone()) {
        Some(s) => Some((s, io)),
        None => {
            eprintln!("not applicable: this store has no disk seam to inject faults through");
            None
        }
    }
}

/// A failed sync fails the put, and the shard is not readable as if it
/// had been acknowledged, neither now nor after a restart.
pub(crate) fn a_failed_sync_is_not_acknowledged<H: Harness>(dir: &Path) {
    let Some((s, io)) = faulty::<H>(dir) else { return };
    let (a, a_crc) = payload(1, 5000);
    let (b, b_crc) = payload(2, 70_000);
    s.put(&key(1, 0), &a, a_crc).unwrap();
    io.fail_next_syncs(1);
    let err = s.put(&key(1, 1), &b, b_crc).expect_err("a put whose sync failed must fail");
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert!(matches!(s.get(&key(1, 1)), Err(DataError::NotFound)));
    assert_eq!(s.list().unwrap(), vec![key(1, 0)]);
    // The store goes on, and a retry succeeds.
    s.put(&key(1, 2), &a, a_crc).unwrap();
    drop(s);
    let s = H::open(dir, None);
    assert!(matches!(s.get(&key(1, 1)), Err(DataError::NotFound)), "the failed put came back after a restart");
    assert_eq!(s.get(&key(1, 0)).unwrap(), (a.clone(), a_crc));
    assert_eq!(s.get(&key(1, 2)).unwrap(), (a, a_crc));
    s.put(&key(1, 1), &b, b_crc).unwrap();
    assert_eq!(s.get(&key(1, 1)).unwrap(), (b, b_crc));
}

/// A write the file system refuses for lack of space is `NoSpace`, stores
/// nothing (not even half a record after a restart), and the store goes on.
pub(crate) fn a_full_disk_is_no_space_and_stores_nothing<H: Harness>(dir: &Path) {
    let Some((s, io)) = faulty::<H>(dir) else { return };
    let (a, a_crc) = payload(1, 3000);
    let (b, b_crc) = payload(2, 200_000);
    s.put(&key(1, 0), &a, a_crc).unwrap();
    io.enospc_next_writes(1);
    let err = s.put(&key(1, 1), &b, b_crc).expect_err("a put the disk refused must fail");
    assert!(matches!(err, DataError::NoSpace { .. }), "{err}");
    assert!(matches!(s.get(&key(1, 1)), Err(DataError::NotFound)));
    assert_eq!(s.usage().shard_count, 1);
    s.put(&key(1, 2), &a, a_crc).unwrap();
    drop(s);
    let s = H::open(dir, None);
    assert!(matches!(s.get(&key(1, 1)), Err(DataError::NotFound)));
    assert_eq!(s.list().unwrap(), vec![key(1, 0), key(1, 2)]);
    assert_eq!(s.get(&key(1, 2)).unwrap(), (a, a_crc));
}
