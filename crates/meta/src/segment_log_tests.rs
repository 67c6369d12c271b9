//! Segment log: replay after restart, torn tails, damage, rotation,
//! compaction and generations.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::segment_log::{Record, SegmentLog};

fn entry(index: u64) -> Record {
    Record::Entry { index, term: Some(index / 2 + 1), stored: format!("entry-{index}").into_bytes() }
}

fn write(log: &mut SegmentLog, records: &[Record]) {
    for r in records {
        match r {
            Record::Entry { index, term, stored } => log.push_entry(*index, term.unwrap_or(0), stored),
            Record::HardState(b) => log.push_hard_state(b),
        }
    }
    log.flush(true).unwrap();
}

/// Where the records of a (preallocated) segment end: its last non-zero
/// byte (the test payloads end in ASCII).
fn data_end(seg: &Path) -> u64 {
    std::fs::read(seg).unwrap().iter().rposition(|&b| b != 0).unwrap() as u64 + 1
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.pop().unwrap()
}

#[test]
fn records_are_replayed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let all = vec![entry(1), Record::HardState(b"hs1".to_vec()), entry(2), entry(3)];
    {
        let (mut log, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
        assert!(replayed.is_empty());
        write(&mut log, &all[..2]);
        write(&mut log, &all[2..]);
    }
    let (_, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
    assert_eq!(replayed, all);
}

#[test]
fn a_hard_state_alone_waits_for_the_next_synced_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        log.push_hard_state(b"commit moved");
        assert_eq!(log.flush(false).unwrap(), 0, "no write, no fsync");
    }
    let (mut log, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
    assert!(replayed.is_empty());
    log.push_hard_state(b"commit moved");
    log.flush(false).unwrap();
    write(&mut log, &[entry(1)]);
    drop(log);
    let (_, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
    assert_eq!(replayed, vec![Record::HardState(b"commit moved".to_vec()), entry(1)]);
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        write(&mut log, &[entry(1), entry(2)]);
        write(&mut log, &[entry(3)]);
    }
    let seg = only_segment(dir.path());
    let len = data_end(&seg);
    // Cut the last record mid-way, as a crash during its write would.
    OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 5).unwrap();
    {
        let (mut log, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
        assert_eq!(replayed, vec![entry(1), entry(2)]);
        write(&mut log, &[entry(3)]);
    }
    let (_, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
    assert_eq!(replayed, vec![entry(1), entry(2), entry(3)], "appends after the cut read back");
}

#[test]
fn garbage_after_the_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        write(&mut log, &[entry(1), entry(2)]);
    }
    let seg = only_segment(dir.path());
    let len = data_end(&seg);
    let garbage: Vec<u8> = (0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8 | 1).collect();
    OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&garbage, len).unwrap();
    {
        let (mut log, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
        assert_eq!(replayed, vec![entry(1), entry(2)]);
        assert_eq!(data_end(&seg), len, "the garbage is cut away");
        write(&mut log, &[entry(3)]);
    }
    let (_, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
    assert_eq!(replayed, vec![entry(1), entry(2), entry(3)]);
}

#[test]
fn a_checksum_mismatch_in_the_middle_is_an_error_not_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        write(&mut log, &[entry(1), entry(2), entry(3)]);
    }
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.windows(7).position(|w| w == b"entry-2").unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    let err = SegmentLog::open(dir.path(), 0).err().expect("damage must not open");
    assert!(err.to_string().contains("damaged"), "{err}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was truncated");
}

#[test]
fn rotation_and_compaction_delete_only_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
    log.set_segment_bytes(60); // about one entry per segment
    write(&mut log, &[Record::HardState(b"hs".to_vec())]);
    for i in 1..=6 {
        write(&mut log, &[entry(i)]);
    }
    let segs = log.segment_paths();
    assert!(segs.len() >= 3, "small segments rotate: {segs:?}");
    log.compact(3).unwrap();
    let left = log.segment_paths();
    assert!(left.len() < segs.len());
    assert!(left.iter().all(|p| p.exists()) && segs.iter().filter(|p| !left.contains(p)).all(|p| !p.exists()));
    drop(log);
    let (_, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
    let indexes: Vec<u64> = replayed
        .iter()
        .filter_map(|r| match r {
            Record::Entry { index, .. } => Some(*index),
            Record::HardState(_) => None,
        })
        .collect();
    assert_eq!(indexes, vec![4, 5, 6], "segments holding only entries up to 3 are gone");
    assert!(matches!(replayed.first(), Some(Record::HardState(_))), "each segment starts with the hard state");
}

#[test]
fn a_new_generation_replaces_the_old_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        write(&mut log, &[entry(1), entry(2)]);
    }
    // The store recorded generation 1 and crashed before resetting the log.
    {
        let (mut log, replayed) = SegmentLog::open(dir.path(), 1).unwrap();
        assert!(replayed.is_empty(), "segments of generation 0 are not this log");
        write(&mut log, &[entry(10)]);
    }
    let (mut log, replayed) = SegmentLog::open(dir.path(), 1).unwrap();
    assert_eq!(replayed, vec![entry(10)]);
    log.reset(2, b"hs").unwrap();
    drop(log);
    let (_, replayed) = SegmentLog::open(dir.path(), 2).unwrap();
    assert_eq!(replayed, vec![Record::HardState(b"hs".to_vec())]);
    assert!(SegmentLog::open(dir.path(), 1).is_err(), "a newer generation than the store's is refused");
}

#[test]
fn a_bad_record_at_the_end_of_a_complete_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        log.set_segment_bytes(60);
        for i in 1..=3 {
            write(&mut log, &[entry(i)]);
        }
        log.segment_paths()[0].clone()
    };
    // The first segment was finished (synced, then a newer one started):
    // a bad last record there cannot be a torn write.
    let mut bytes = std::fs::read(&first).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[end] ^= 0x01;
    std::fs::write(&first, &bytes).unwrap();
    let err = SegmentLog::open(dir.path(), 0).err().expect("damage must not open");
    assert!(err.to_string().contains("damaged"), "{err}");
}

/// A segment as format 1 wrote it: version-1 header, entries without terms.
fn version1_segment(dir: &Path, seq: u64, records: &[(u64, &[u8])]) {
    use crate::segment::{encode_record, Header, KIND_ENTRY, VERSION_1};
    let mut bytes = Header { generation: 0, seq, version: VERSION_1 }.encode().to_vec();
    for (index, stored) in records {
        encode_record(&mut bytes, KIND_ENTRY, &[&index.to_le_bytes(), stored]);
    }
    std::fs::write(dir.join(format!("{seq:020}.seg")), bytes).unwrap();
}

#[test]
fn a_version1_segment_is_read_and_continued_in_a_version2_segment() {
    let dir = tempfile::tempdir().unwrap();
    version1_segment(dir.path(), 1, &[(1, b"old-1"), (2, b"old-2")]);
    let old = |index: u64, stored: &[u8]| Record::Entry { index, term: None, stored: stored.to_vec() };
    {
        let (mut log, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
        assert_eq!(replayed, vec![old(1, b"old-1"), old(2, b"old-2")]);
        assert_eq!(log.segment_paths().len(), 2, "new records go to a new segment");
        write(&mut log, &[entry(3)]);
    }
    let (log, replayed) = SegmentLog::open(dir.path(), 0).unwrap();
    assert_eq!(replayed, vec![old(1, b"old-1"), old(2, b"old-2"), entry(3)]);
    let paths = log.segment_paths();
    let version = |p: &Path| crate::segment::Header::decode(&std::fs::read(p).unwrap()).unwrap().version;
    assert_eq!((version(&paths[0]), version(&paths[1])), (crate::segment::VERSION_1, crate::segment::VERSION));
}
