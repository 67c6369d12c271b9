//! Tests of the core namespace operations: create, lookup, commit, directories, rename.

use super::*;

/// Attributes of a test file (shared by the namespace and state-machine tests).
pub(crate) fn attrs() -> NewInode {
    NewInode {
        manifest: None,
        mode: 0o644,
        uid: 1,
        gid: 1,
        key: Some(FileKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![1], format: 0 }),
    }
}

#[test]
fn create_lookup_unlink() {
    let mut ns = Namespace::new(Layout::default());
    let f = ns.create(ROOT_INO, b"a", attrs(), true, 5).unwrap();
    assert_eq!(ns.lookup(ROOT_INO, b"a").unwrap().ino, f.ino);
    assert_eq!(ns.create(ROOT_INO, b"a", attrs(), true, 6).unwrap_err().code, ErrorCode::AlreadyExists);
    assert_eq!(ns.create(ROOT_INO, b"a", attrs(), false, 6).unwrap().ino, f.ino);
    let c = ChunkRef { index: 0, version: 9, sealed_len: 50, pg: 3, format: 2, data_shards: 0 };
    ns.commit_chunk(f.ino, c, 10, None, 7).unwrap();
    let r = ns.unlink(ROOT_INO, b"a", 8).unwrap();
    assert_eq!(r.chunks, vec![c]);
    assert_eq!(ns.lookup(ROOT_INO, b"a").unwrap_err().code, ErrorCode::NotFound);
    assert!(ns.get(f.ino).is_err());
}

#[test]
fn a_chunk_stored_as_copies_is_kept_and_a_wider_one_refused() {
    let mut ns = Namespace::new(Layout::default());
    let f = ns.create(ROOT_INO, b"a", attrs(), true, 1).unwrap();
    let copies = ChunkRef { index: 0, version: 1, sealed_len: 50, pg: 3, format: 2, data_shards: 1 };
    ns.commit_chunk(f.ino, copies, 10, None, 2).unwrap();
    assert_eq!(ns.get(f.ino).unwrap().chunks[&0].k(&Layout::default()), 1);
    // One shard (the whole sealed chunk) per slot of the group.
    assert_eq!(ns.pg_shard_bytes(8)[3], 50);
    let wider = ChunkRef { version: 2, data_shards: Layout::default().data_shards + 1, ..copies };
    assert_eq!(ns.commit_chunk(f.ino, wider, 10, None, 3).unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(ns.get(f.ino).unwrap().chunks[&0].version, 1, "nothing changed");
}

#[test]
fn commit_replaces_version_and_grows_size() {
    let mut ns = Namespace::new(Layout::default());
    let f = ns.create(ROOT_INO, b"a", attrs(), true, 1).unwrap();
    let v1 = ChunkRef { index: 1, version: 1, sealed_len: 50, pg: 0, format: 0, data_shards: 0 };
    let v2 = ChunkRef { version: 2, ..v1 };
    let cs = Layout::default().chunk_size as u64;
    assert!(ns.commit_chunk(f.ino, v1, cs + 10, None, 2).unwrap().chunks.is_empty());
    assert_eq!(ns.commit_chunk(f.ino, v2, cs + 5, None, 3).unwrap().chunks, vec![v1]);
    assert_eq!(ns.get(f.ino).unwrap().size, cs + 10);
    assert_eq!(ns.commit_chunk(f.ino, v2, cs, None, 3).unwrap_err().code, ErrorCode::InvalidArgument);
}

#[test]
fn directories() {
    let mut ns = Namespace::new(Layout::default());
    let d = ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    ns.create(d.ino, b"x", attrs(), true, 1).unwrap();
    assert_eq!(ns.rmdir(ROOT_INO, b"d", 2).unwrap_err().code, ErrorCode::NotEmpty);
    assert_eq!(ns.unlink(ROOT_INO, b"d", 2).unwrap_err().code, ErrorCode::IsADirectory);
    assert_eq!(ns.lookup(d.ino, b"x").map(|i| i.kind).unwrap(), Kind::Regular);
    let x = ns.lookup(d.ino, b"x").unwrap().ino;
    assert_eq!(ns.create(x, b"y", attrs(), true, 1).unwrap_err().code, ErrorCode::NotADirectory);
    ns.unlink(d.ino, b"x", 3).unwrap();
    ns.rmdir(ROOT_INO, b"d", 4).unwrap();
    assert_eq!(ns.get(ROOT_INO).unwrap().nlink, 2);
}

#[test]
fn readdir_pages_in_name_order() {
    let mut ns = Namespace::new(Layout::default());
    for i in 0..25 {
        ns.create(ROOT_INO, format!("f{i:02}").as_bytes(), attrs(), true, 1).unwrap();
    }
    let (page, more) = ns.readdir(ROOT_INO, b"", 10).unwrap();
    assert!(more);
    assert_eq!(page[0].0, b"f00");
    let (page, more) = ns.readdir(ROOT_INO, b"f19", 10).unwrap();
    assert!(!more);
    assert_eq!(page.iter().map(|e| e.0.as_slice()).collect::<Vec<_>>(), [b"f20", b"f21", b"f22", b"f23", b"f24"]);
}

#[test]
fn a_readdir_page_is_capped_whatever_the_request_asks() {
    let mut ns = Namespace::new(Layout::default());
    for i in 0..MAX_READDIR_PAGE + 5 {
        ns.create(ROOT_INO, format!("f{i:06}").as_bytes(), attrs(), true, 1).unwrap();
    }
    let (page, more) = ns.readdir(ROOT_INO, b"", usize::MAX).unwrap();
    assert_eq!(page.len(), MAX_READDIR_PAGE);
    assert!(more);
}

#[test]
fn rename_replaces_and_refuses_cycles() {
    let mut ns = Namespace::new(Layout::default());
    let a = ns.create(ROOT_INO, b"a", attrs(), true, 1).unwrap();
    ns.create(ROOT_INO, b"b", attrs(), true, 1).unwrap();
    ns.rename(ROOT_INO, b"a", ROOT_INO, b"b", 2).unwrap();
    assert_eq!(ns.lookup(ROOT_INO, b"b").unwrap().ino, a.ino);
    assert!(ns.lookup(ROOT_INO, b"a").is_err());
    let d = ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    let e = ns.mkdir(d.ino, b"e", attrs(), 1).unwrap();
    assert_eq!(ns.rename(ROOT_INO, b"d", e.ino, b"d2", 3).unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(ns.rename(ROOT_INO, b"b", ROOT_INO, b"d", 3).unwrap_err().code, ErrorCode::IsADirectory);
}

#[test]
fn bad_names_are_refused() {
    let mut ns = Namespace::new(Layout::default());
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(ns.create(ROOT_INO, bad, attrs(), true, 1).unwrap_err().code, ErrorCode::InvalidArgument);
    }
    let long = vec![b'x'; 256];
    assert_eq!(ns.create(ROOT_INO, &long, attrs(), true, 1).unwrap_err().code, ErrorCode::NameTooLong);
}

/// Linux names are any bytes but `/` and NUL: Latin-1 and other non-UTF-8
/// names (Python's PEP 383 tests, real datasets) must work like any other.
#[test]
fn names_are_bytes_not_utf8() {
    let mut ns = Namespace::new(Layout::default());
    let (ff, cafe, utf8) = (&b"\xff"[..], &b"caf\xe9"[..], "café".as_bytes());
    let a = ns.create(ROOT_INO, ff, attrs(), true, 1).unwrap();
    let d = ns.mkdir(ROOT_INO, cafe, attrs(), 1).unwrap();
    // Latin-1 "café" and UTF-8 "café" are different names.
    let u = ns.create(ROOT_INO, utf8, attrs(), true, 1).unwrap();
    assert_ne!(u.ino, d.ino);
    assert_eq!(ns.lookup(ROOT_INO, ff).unwrap().ino, a.ino);
    assert_eq!(ns.lookup(ROOT_INO, cafe).unwrap().ino, d.ino);
    // Listed in byte order, paged by a byte cursor.
    let (page, more) = ns.readdir(ROOT_INO, b"", 10).unwrap();
    let names: Vec<&[u8]> = page.iter().map(|e| e.0.as_slice()).collect();
    assert_eq!((names, more), (vec![utf8, cafe, ff], false));
    let (page, _) = ns.readdir(ROOT_INO, cafe, 10).unwrap();
    assert_eq!(page, vec![(ff.to_vec(), a.ino, Kind::Regular)]);
    // Rename into and out of a non-UTF-8 directory, then unlink.
    ns.rename(ROOT_INO, ff, d.ino, b"\xfe\xfd", 2).unwrap();
    assert!(ns.lookup(ROOT_INO, ff).is_err());
    assert_eq!(ns.lookup(d.ino, b"\xfe\xfd").unwrap().ino, a.ino);
    ns.link(a.ino, ROOT_INO, b"\x80", 3).unwrap();
    ns.unlink(d.ino, b"\xfe\xfd", 4).unwrap();
    assert_eq!(ns.lookup(ROOT_INO, b"\x80").unwrap().nlink, 1);
    // Extended attribute names are bytes too.
    ns.set_xattr(a.ino, b"user.\xff", b"v", XattrMode::Any, 5).unwrap();
    assert_eq!(ns.get_xattr(a.ino, b"user.\xff").unwrap(), b"v");
    assert_eq!(ns.list_xattr(a.ino).unwrap(), vec![b"user.\xff".to_vec()]);
    // Still refused: '/', NUL, empty, "." and "..", and more than 255 bytes.
    for bad in [&b"\xff/x"[..], b"\xff\0", b"", b".", b".."] {
        assert_eq!(ns.create(ROOT_INO, bad, attrs(), true, 6).unwrap_err().code, ErrorCode::InvalidArgument);
    }
    let long = vec![0xe9; MAX_NAME_LEN + 1];
    assert_eq!(ns.create(ROOT_INO, &long, attrs(), true, 6).unwrap_err().code, ErrorCode::NameTooLong);
    ns.create(ROOT_INO, &long[..MAX_NAME_LEN], attrs(), true, 6).unwrap();
}

#[test]
fn pg_chunk_pages_walk_the_group_index_in_order() {
    let mut ns = Namespace::new(Layout::default());
    let cs = Layout::default().chunk_size as u64;
    let mut want = Vec::new();
    for f in 0..5u64 {
        let ino = ns.create(ROOT_INO, format!("f{f}").as_bytes(), attrs(), true, 1).unwrap().ino;
        for index in 0..6u64 {
            let pg = ((f + index) % 3) as u32;
            ns.commit_chunk(
                ino,
                ChunkRef { index, version: 1, sealed_len: 9, pg, format: 2, data_shards: 0 },
                (index + 1) * cs,
                None,
                2,
            )
            .unwrap();
            if pg == 1 {
                want.push((ino, index));
            }
        }
    }
    // Replace a version (same group), truncate one file and unlink another:
    // the pages follow.
    let f0 = ns.lookup(ROOT_INO, b"f0").unwrap().ino;
    ns.commit_chunk(
        f0,
        ChunkRef { index: 1, version: 2, sealed_len: 9, pg: 1, format: 2, data_shards: 0 },
        2 * cs,
        None,
        3,
    )
    .unwrap();
    let f1 = ns.lookup(ROOT_INO, b"f1").unwrap().ino;
    ns.set_attr(f1, &SetAttrs { size: Some(cs), ..Default::default() }, 4).unwrap();
    want.retain(|&(ino, index)| ino != f1 || index < 1);
    let f2 = ns.lookup(ROOT_INO, b"f2").unwrap().ino;
    ns.unlink(ROOT_INO, b"f2", 5).unwrap();
    want.retain(|&(ino, _)| ino != f2);

    let mut got = Vec::new();
    let mut after = (0, 0);
    loop {
        let (page, more) = ns.chunks_in_pg(1, after, 2);
        assert!(page.len() <= 2);
        got.extend(page.iter().map(|(inode, c)| (inode.ino, c.index)));
        if let Some((inode, c)) = page.last() {
            after = (inode.ino, c.index);
        }
        if !more {
            break;
        }
    }
    assert_eq!(got, want);
    assert_eq!(ns.chunks_in_pg(1, (f0, 1), 10).0.first().map(|(i, c)| (i.ino, c.index)), want.get(1).copied());
    assert_eq!(ns.chunks_in_pg(1, (f0, 0), 10).0[0].1.version, 2, "the page carries the live version");
    assert!(ns.pg_index_is_consistent());
}
