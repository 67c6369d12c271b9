//! Tests of the core namespace operations: create, lookup, commit, directories, rename.

use super::*;

fn attrs() -> NewInode {
    NewInode {
        mode: 0o644,
        uid: 1,
        gid: 1,
        key: Some(FileKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![1] }),
    }
}

#[test]
fn create_lookup_unlink() {
    let mut ns = Namespace::new(Layout::default());
    let f = ns.create(ROOT_INO, "a", attrs(), true, 5).unwrap();
    assert_eq!(ns.lookup(ROOT_INO, "a").unwrap().ino, f.ino);
    assert_eq!(ns.create(ROOT_INO, "a", attrs(), true, 6).unwrap_err().code, ErrorCode::AlreadyExists);
    assert_eq!(ns.create(ROOT_INO, "a", attrs(), false, 6).unwrap().ino, f.ino);
    let c = ChunkRef { index: 0, version: 9, sealed_len: 50, pg: 3 };
    ns.commit_chunk(f.ino, c, 10, 7).unwrap();
    let r = ns.unlink(ROOT_INO, "a", 8).unwrap();
    assert_eq!(r.chunks, vec![c]);
    assert_eq!(ns.lookup(ROOT_INO, "a").unwrap_err().code, ErrorCode::NotFound);
    assert!(ns.get(f.ino).is_err());
}

#[test]
fn commit_replaces_version_and_grows_size() {
    let mut ns = Namespace::new(Layout::default());
    let f = ns.create(ROOT_INO, "a", attrs(), true, 1).unwrap();
    let v1 = ChunkRef { index: 1, version: 1, sealed_len: 50, pg: 0 };
    let v2 = ChunkRef { version: 2, ..v1 };
    let cs = Layout::default().chunk_size as u64;
    assert!(ns.commit_chunk(f.ino, v1, cs + 10, 2).unwrap().chunks.is_empty());
    assert_eq!(ns.commit_chunk(f.ino, v2, cs + 5, 3).unwrap().chunks, vec![v1]);
    assert_eq!(ns.get(f.ino).unwrap().size, cs + 10);
    assert_eq!(ns.commit_chunk(f.ino, v2, cs, 3).unwrap_err().code, ErrorCode::InvalidArgument);
}

#[test]
fn directories() {
    let mut ns = Namespace::new(Layout::default());
    let d = ns.mkdir(ROOT_INO, "d", attrs(), 1).unwrap();
    ns.create(d.ino, "x", attrs(), true, 1).unwrap();
    assert_eq!(ns.rmdir(ROOT_INO, "d", 2).unwrap_err().code, ErrorCode::NotEmpty);
    assert_eq!(ns.unlink(ROOT_INO, "d", 2).unwrap_err().code, ErrorCode::IsADirectory);
    assert_eq!(ns.lookup(d.ino, "x").map(|i| i.kind).unwrap(), Kind::Regular);
    let x = ns.lookup(d.ino, "x").unwrap().ino;
    assert_eq!(ns.create(x, "y", attrs(), true, 1).unwrap_err().code, ErrorCode::NotADirectory);
    ns.unlink(d.ino, "x", 3).unwrap();
    ns.rmdir(ROOT_INO, "d", 4).unwrap();
    assert_eq!(ns.get(ROOT_INO).unwrap().nlink, 2);
}

#[test]
fn readdir_pages_in_name_order() {
    let mut ns = Namespace::new(Layout::default());
    for i in 0..25 {
        ns.create(ROOT_INO, &format!("f{i:02}"), attrs(), true, 1).unwrap();
    }
    let (page, more) = ns.readdir(ROOT_INO, "", 10).unwrap();
    assert!(more);
    assert_eq!(page[0].0, "f00");
    let (page, more) = ns.readdir(ROOT_INO, "f19", 10).unwrap();
    assert!(!more);
    assert_eq!(page.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["f20", "f21", "f22", "f23", "f24"]);
}

#[test]
fn rename_replaces_and_refuses_cycles() {
    let mut ns = Namespace::new(Layout::default());
    let a = ns.create(ROOT_INO, "a", attrs(), true, 1).unwrap();
    ns.create(ROOT_INO, "b", attrs(), true, 1).unwrap();
    ns.rename(ROOT_INO, "a", ROOT_INO, "b", 2).unwrap();
    assert_eq!(ns.lookup(ROOT_INO, "b").unwrap().ino, a.ino);
    assert!(ns.lookup(ROOT_INO, "a").is_err());
    let d = ns.mkdir(ROOT_INO, "d", attrs(), 1).unwrap();
    let e = ns.mkdir(d.ino, "e", attrs(), 1).unwrap();
    assert_eq!(ns.rename(ROOT_INO, "d", e.ino, "d2", 3).unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(ns.rename(ROOT_INO, "b", ROOT_INO, "d", 3).unwrap_err().code, ErrorCode::IsADirectory);
}

#[test]
fn bad_names_are_refused() {
    let mut ns = Namespace::new(Layout::default());
    for bad in ["", ".", "..", "a/b"] {
        assert_eq!(ns.create(ROOT_INO, bad, attrs(), true, 1).unwrap_err().code, ErrorCode::InvalidArgument);
    }
    let long = "x".repeat(256);
    assert_eq!(ns.create(ROOT_INO, &long, attrs(), true, 1).unwrap_err().code, ErrorCode::NameTooLong);
}
