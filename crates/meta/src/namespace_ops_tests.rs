//! Focused tests of the POSIX operations: setattr, links, symlinks, xattrs,
//! open-unlinked files, layout policy, rename corner cases, large directories.

use shardline_types::{ErrorCode, Layout, ROOT_INO};

use super::tests::attrs;
use super::*;

fn small() -> Namespace {
    Namespace::new(Layout { chunk_size: 4096, data_shards: 4, parity_shards: 2 })
}

fn chunk(index: u64, version: u64) -> ChunkRef {
    ChunkRef { index, version, sealed_len: 100, pg: 0, format: 2, data_shards: 0 }
}

fn code<T: std::fmt::Debug>(r: OpResult<T>) -> ErrorCode {
    r.expect_err("operation should fail").code
}

#[test]
fn setattr_changes_fields_and_ctime() {
    let mut ns = small();
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    let req = SetAttrs {
        mode: Some(0o100600),
        uid: Some(7),
        gid: Some(8),
        atime_ns: Some(11),
        mtime_ns: Some(12),
        ..Default::default()
    };
    let (a, released) = ns.set_attr(f.ino, &req, 20).unwrap();
    assert_eq!((a.mode, a.uid, a.gid, a.atime_ns, a.mtime_ns, a.ctime_ns), (0o600, 7, 8, 11, 12, 20));
    assert!(released.chunks.is_empty());
    // Unset fields stay.
    let (a, _) = ns.set_attr(f.ino, &SetAttrs::default(), 30).unwrap();
    assert_eq!((a.mode, a.uid, a.mtime_ns, a.ctime_ns), (0o600, 7, 12, 30));
    assert_eq!(code(ns.set_attr(999, &req, 1)), ErrorCode::NotFound);
}

#[test]
fn truncate_releases_whole_chunks_beyond_the_size_and_keeps_the_straddling_one() {
    let mut ns = small();
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    for i in 0..4 {
        ns.commit_chunk(f.ino, chunk(i, 10 + i), (i + 1) * 4096, None, 2).unwrap();
    }
    let shrink = |size| SetAttrs { size: Some(size), ..Default::default() };
    // 5000 bytes: chunk 0 whole, chunk 1 straddles; 2 and 3 go.
    let (a, r) = ns.set_attr(f.ino, &shrink(5000), 3).unwrap();
    assert_eq!((a.size, a.mtime_ns), (5000, 3));
    assert_eq!(r.file_id, f.ino);
    assert_eq!(r.chunks, vec![chunk(2, 12), chunk(3, 13)]);
    assert_eq!(ns.get(f.ino).unwrap().chunks.keys().copied().collect::<Vec<_>>(), [0, 1]);
    // Exactly at a chunk boundary: chunk 1 starts at the size, so it goes.
    let (_, r) = ns.set_attr(f.ino, &shrink(4096), 4).unwrap();
    assert_eq!(r.chunks, vec![chunk(1, 11)]);
    // Growing keeps everything and records the size (a hole).
    let (a, r) = ns.set_attr(f.ino, &shrink(1 << 20), 5).unwrap();
    assert!(r.chunks.is_empty());
    assert_eq!(a.size, 1 << 20);
    let (_, r) = ns.set_attr(f.ino, &shrink(0), 6).unwrap();
    assert_eq!(r.chunks, vec![chunk(0, 10)]);
    assert_eq!(ns.get(f.ino).unwrap().size, 0);
    assert_eq!(code(ns.set_attr(f.ino, &shrink(u64::MAX), 7)), ErrorCode::InvalidArgument);
}

#[test]
fn size_of_directories_and_symlinks_cannot_be_set() {
    let mut ns = small();
    let d = ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    let s = ns.symlink(ROOT_INO, b"s", b"d", attrs(), 1).unwrap();
    let size = SetAttrs { size: Some(0), ..Default::default() };
    assert_eq!(code(ns.set_attr(d.ino, &size, 2)), ErrorCode::IsADirectory);
    assert_eq!(code(ns.set_attr(s.ino, &size, 2)), ErrorCode::InvalidArgument);
    // A failed setattr changes nothing.
    assert_eq!(ns.get(s.ino).unwrap().ctime_ns, 1);
    // Other attributes of a directory can change.
    assert_eq!(ns.set_attr(d.ino, &SetAttrs { mode: Some(0o700), ..Default::default() }, 3).unwrap().0.mode, 0o700);
}

#[test]
fn hard_links_count_and_survive_unlink_of_one_name() {
    let mut ns = small();
    let d = ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    ns.commit_chunk(f.ino, chunk(0, 1), 10, None, 1).unwrap();
    let a = ns.link(f.ino, d.ino, b"g", 2).unwrap();
    assert_eq!((a.nlink, a.ctime_ns), (2, 2));
    assert_eq!(ns.lookup(d.ino, b"g").unwrap().ino, f.ino);
    assert_eq!(ns.get(d.ino).unwrap().mtime_ns, 2);
    assert!(ns.unlink(ROOT_INO, b"f", 3).unwrap().chunks.is_empty());
    assert_eq!(ns.get(f.ino).unwrap().nlink, 1);
    assert_eq!(ns.unlink(d.ino, b"g", 4).unwrap().chunks, vec![chunk(0, 1)]);
    assert!(ns.get(f.ino).is_err());
}

#[test]
fn link_errors() {
    let mut ns = small();
    let d = ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    let s = ns.symlink(ROOT_INO, b"s", b"f", attrs(), 1).unwrap();
    assert_eq!(code(ns.link(d.ino, ROOT_INO, b"d2", 2)), ErrorCode::PermissionDenied);
    assert_eq!(code(ns.link(f.ino, ROOT_INO, b"d", 2)), ErrorCode::AlreadyExists);
    assert_eq!(code(ns.link(f.ino, f.ino, b"x", 2)), ErrorCode::NotADirectory);
    assert_eq!(code(ns.link(999, ROOT_INO, b"x", 2)), ErrorCode::NotFound);
    assert_eq!(code(ns.link(f.ino, ROOT_INO, b"a/b", 2)), ErrorCode::InvalidArgument);
    assert_eq!(code(ns.link(f.ino, ROOT_INO, &b"x".repeat(256), 2)), ErrorCode::NameTooLong);
    // Symlinks can be hard-linked.
    assert_eq!(ns.link(s.ino, d.ino, b"s2", 2).unwrap().nlink, 2);
    // An open file with no names left cannot get one back.
    ns.open(f.ino, 1).unwrap();
    ns.unlink(ROOT_INO, b"f", 3).unwrap();
    assert_eq!(code(ns.link(f.ino, ROOT_INO, b"back", 4)), ErrorCode::NotFound);
}

#[test]
fn symlink_and_readlink() {
    let mut ns = small();
    let s = ns.symlink(ROOT_INO, b"s", b"../some/where", attrs(), 3).unwrap();
    assert_eq!((s.kind, s.size, s.nlink, s.key.is_none()), (Kind::Symlink, 13, 1, true));
    assert_eq!(ns.readlink(s.ino).unwrap(), b"../some/where");
    assert_eq!(ns.lookup(ROOT_INO, b"s").unwrap().kind, Kind::Symlink);
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    assert_eq!(code(ns.readlink(f.ino)), ErrorCode::InvalidArgument);
    assert_eq!(code(ns.readlink(ROOT_INO)), ErrorCode::InvalidArgument);
    assert_eq!(code(ns.symlink(ROOT_INO, b"s", b"x", attrs(), 4)), ErrorCode::AlreadyExists);
    assert_eq!(code(ns.symlink(ROOT_INO, b"t", b"", attrs(), 4)), ErrorCode::InvalidArgument);
    assert_eq!(code(ns.symlink(ROOT_INO, b"t", b"a\0b", attrs(), 4)), ErrorCode::InvalidArgument);
    let long = vec![b'x'; MAX_SYMLINK_LEN + 1];
    assert_eq!(code(ns.symlink(ROOT_INO, b"t", &long, attrs(), 4)), ErrorCode::NameTooLong);
    assert_eq!(code(ns.symlink(f.ino, b"t", b"x", attrs(), 4)), ErrorCode::NotADirectory);
    // Symlinks hold no chunks.
    assert_eq!(code(ns.commit_chunk(s.ino, chunk(0, 1), 1, None, 5)), ErrorCode::IsADirectory);
    assert!(ns.unlink(ROOT_INO, b"s", 5).unwrap().chunks.is_empty());
}

#[test]
fn xattrs_set_get_list_remove() {
    let mut ns = small();
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    ns.set_xattr(f.ino, b"user.b", b"2", XattrMode::Any, 2).unwrap();
    ns.set_xattr(f.ino, b"user.a", b"1", XattrMode::Create, 3).unwrap();
    assert_eq!(ns.get(f.ino).unwrap().ctime_ns, 3);
    assert_eq!(ns.list_xattr(f.ino).unwrap(), [b"user.a", b"user.b"]);
    assert_eq!(ns.get_xattr(f.ino, b"user.a").unwrap(), b"1");
    assert_eq!(code(ns.set_xattr(f.ino, b"user.a", b"x", XattrMode::Create, 4)), ErrorCode::AlreadyExists);
    ns.set_xattr(f.ino, b"user.a", b"new", XattrMode::Replace, 4).unwrap();
    assert_eq!(ns.get_xattr(f.ino, b"user.a").unwrap(), b"new");
    let missing = ns.set_xattr(f.ino, b"user.c", b"x", XattrMode::Replace, 4).unwrap_err();
    assert_eq!((missing.code, missing.message.as_str()), (ErrorCode::NotFound, "no such attribute"));
    assert_eq!(ns.get_xattr(f.ino, b"user.c").unwrap_err().message, "no such attribute");
    ns.remove_xattr(f.ino, b"user.a", 5).unwrap();
    assert_eq!(code(ns.remove_xattr(f.ino, b"user.a", 6)), ErrorCode::NotFound);
    assert_eq!(ns.list_xattr(f.ino).unwrap(), [b"user.b"]);
    // Directories carry attributes too; a missing inode is a different NotFound.
    ns.set_xattr(ROOT_INO, b"user.x", b"", XattrMode::Any, 7).unwrap();
    assert_eq!(ns.get_xattr(ROOT_INO, b"user.x").unwrap(), b"");
    assert_ne!(ns.get_xattr(999, b"user.x").unwrap_err().message, "no such attribute");
}

#[test]
fn xattr_limits() {
    let mut ns = small();
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    let long = vec![b'u'; MAX_XATTR_NAME_LEN + 1];
    assert_eq!(code(ns.set_xattr(f.ino, &long, b"", XattrMode::Any, 2)), ErrorCode::NameTooLong);
    assert_eq!(code(ns.get_xattr(f.ino, &long)), ErrorCode::NameTooLong);
    assert_eq!(code(ns.set_xattr(f.ino, b"", b"", XattrMode::Any, 2)), ErrorCode::InvalidArgument);
    let big = vec![0u8; MAX_XATTR_VALUE_LEN + 1];
    assert_eq!(code(ns.set_xattr(f.ino, b"user.big", &big, XattrMode::Any, 2)), ErrorCode::InvalidArgument);
    let max = vec![0u8; MAX_XATTR_VALUE_LEN];
    ns.set_xattr(f.ino, b"user.max", &max, XattrMode::Any, 2).unwrap();
    // The per-inode total is bounded.
    let mut i = 0;
    let err = loop {
        match ns.set_xattr(f.ino, format!("user.{i}").as_bytes(), &max, XattrMode::Any, 2) {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err.code, ErrorCode::NoSpace);
    assert!(i > 10);
    // Replacing an attribute in place does not count its old value twice.
    ns.set_xattr(f.ino, b"user.0", &max, XattrMode::Replace, 3).unwrap();
}

#[test]
fn unlinked_open_file_stays_until_last_release() {
    let mut ns = small();
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    ns.commit_chunk(f.ino, chunk(0, 1), 10, None, 1).unwrap();
    ns.open(f.ino, 1).unwrap();
    ns.open(f.ino, 1).unwrap();
    assert_eq!(ns.open_count(f.ino), 2);
    assert!(ns.unlink(ROOT_INO, b"f", 2).unwrap().chunks.is_empty());
    assert_eq!(code(ns.lookup(ROOT_INO, b"f")), ErrorCode::NotFound);
    let orphan = ns.get(f.ino).unwrap();
    assert_eq!((orphan.nlink, orphan.chunks.len()), (0, 1));
    // Still writable and truncatable by inode.
    ns.commit_chunk(f.ino, chunk(1, 2), 5000, None, 3).unwrap();
    assert!(ns.release(f.ino, 1).unwrap().chunks.is_empty());
    assert!(ns.get(f.ino).is_ok());
    let r = ns.release(f.ino, 1).unwrap();
    assert_eq!((r.file_id, r.chunks), (f.ino, vec![chunk(0, 1), chunk(1, 2)]));
    assert_eq!(code(ns.get(f.ino)), ErrorCode::NotFound);
    assert_eq!(code(ns.release(f.ino, 1)), ErrorCode::NotFound);
    assert_eq!(ns.inode_count(), 1);
}

#[test]
fn rename_over_an_open_file_keeps_it() {
    let mut ns = small();
    let a = ns.create(ROOT_INO, b"a", attrs(), true, 1).unwrap();
    let b = ns.create(ROOT_INO, b"b", attrs(), true, 1).unwrap();
    ns.commit_chunk(b.ino, chunk(0, 7), 10, None, 1).unwrap();
    ns.open(b.ino, 1).unwrap();
    assert!(ns.rename(ROOT_INO, b"a", ROOT_INO, b"b", 2).unwrap().chunks.is_empty());
    assert_eq!(ns.lookup(ROOT_INO, b"b").unwrap().ino, a.ino);
    assert_eq!(ns.get(b.ino).unwrap().nlink, 0);
    assert_eq!(ns.release(b.ino, 1).unwrap().chunks, vec![chunk(0, 7)]);
}

#[test]
fn open_and_release_errors() {
    let mut ns = small();
    let d = ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    assert_eq!(code(ns.open(d.ino, 1)), ErrorCode::IsADirectory);
    assert_eq!(code(ns.open(999, 1)), ErrorCode::NotFound);
    assert_eq!(code(ns.release(f.ino, 1)), ErrorCode::InvalidArgument);
    // Releasing a file that still has a name keeps it.
    ns.open(f.ino, 1).unwrap();
    assert!(ns.release(f.ino, 1).unwrap().chunks.is_empty());
    assert!(ns.get(f.ino).is_ok());
    assert_eq!(ns.open_count(f.ino), 0);
}

#[test]
fn layout_policy_is_inherited_by_new_entries() {
    let mut ns = small();
    let d = ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    let old = ns.create(d.ino, b"old", attrs(), true, 1).unwrap();
    let wide = Layout { chunk_size: 1 << 20, data_shards: 8, parity_shards: 3 };
    assert_eq!(code(ns.set_layout(d.ino, wide, 6, 2)), ErrorCode::InvalidArgument);
    let policy = Layout { chunk_size: 1 << 20, data_shards: 3, parity_shards: 2 };
    let a = ns.set_layout(d.ino, policy, 6, 2).unwrap();
    assert_eq!((a.layout, a.ctime_ns), (policy, 2));
    let f = ns.create(d.ino, b"new", attrs(), true, 3).unwrap();
    let sub = ns.mkdir(d.ino, b"sub", attrs(), 3).unwrap();
    let s = ns.symlink(d.ino, b"s", b"x", attrs(), 3).unwrap();
    let g = ns.create(sub.ino, b"g", attrs(), true, 3).unwrap();
    for layout in [f.layout, sub.layout, s.layout, g.layout] {
        assert_eq!(layout, policy);
    }
    assert_eq!(ns.get(old.ino).unwrap().layout, small().get(ROOT_INO).unwrap().layout);
    assert_eq!(code(ns.set_layout(f.ino, policy, 6, 4)), ErrorCode::NotADirectory);
    let bad = Layout { chunk_size: 1, data_shards: 4, parity_shards: 2 };
    assert_eq!(code(ns.set_layout(d.ino, bad, 6, 4)), ErrorCode::InvalidArgument);
    assert_eq!(code(ns.set_layout(999, policy, 6, 4)), ErrorCode::NotFound);
}

#[test]
fn rename_directory_over_non_empty_directory_fails_and_changes_nothing() {
    let mut ns = small();
    let a = ns.mkdir(ROOT_INO, b"a", attrs(), 1).unwrap();
    let b = ns.mkdir(ROOT_INO, b"b", attrs(), 1).unwrap();
    ns.create(b.ino, b"x", attrs(), true, 1).unwrap();
    assert_eq!(code(ns.rename(ROOT_INO, b"a", ROOT_INO, b"b", 2)), ErrorCode::NotEmpty);
    assert_eq!(ns.lookup(ROOT_INO, b"a").unwrap().ino, a.ino);
    assert_eq!(ns.lookup(ROOT_INO, b"b").unwrap().ino, b.ino);
    assert_eq!(ns.get(ROOT_INO).unwrap().nlink, 4);
    // A target that is an ancestor of the source is non-empty too.
    let c = ns.mkdir(a.ino, b"c", attrs(), 1).unwrap();
    assert_eq!(code(ns.rename(a.ino, b"c", ROOT_INO, b"a", 2)), ErrorCode::NotEmpty);
    assert_eq!(ns.lookup(a.ino, b"c").unwrap().ino, c.ino);
}

#[test]
fn rename_keeps_parent_link_counts() {
    let mut ns = small();
    let a = ns.mkdir(ROOT_INO, b"a", attrs(), 1).unwrap();
    let b = ns.mkdir(ROOT_INO, b"b", attrs(), 1).unwrap();
    let c = ns.mkdir(a.ino, b"c", attrs(), 1).unwrap();
    ns.mkdir(b.ino, b"empty", attrs(), 1).unwrap();
    let nlink = |ns: &Namespace, ino| ns.get(ino).unwrap().nlink;
    assert_eq!((nlink(&ns, ROOT_INO), nlink(&ns, a.ino), nlink(&ns, b.ino)), (4, 3, 3));
    // Move a/c over the empty b/empty: a loses a subdirectory, b keeps its count.
    ns.rename(a.ino, b"c", b.ino, b"empty", 2).unwrap();
    assert_eq!((nlink(&ns, ROOT_INO), nlink(&ns, a.ino), nlink(&ns, b.ino)), (4, 2, 3));
    assert_eq!(ns.lookup(b.ino, b"empty").unwrap().ino, c.ino);
    // Within one directory: unchanged.
    ns.rename(b.ino, b"empty", b.ino, b"c", 3).unwrap();
    assert_eq!(nlink(&ns, b.ino), 3);
    // Replacing an empty directory in the same parent drops one.
    ns.mkdir(b.ino, b"d", attrs(), 4).unwrap();
    assert_eq!(nlink(&ns, b.ino), 4);
    ns.rename(b.ino, b"c", b.ino, b"d", 5).unwrap();
    assert_eq!(nlink(&ns, b.ino), 3);
    // The moved directory's new ancestry is known: it cannot take its parent in.
    assert_eq!(code(ns.rename(ROOT_INO, b"b", c.ino, b"b", 6)), ErrorCode::InvalidArgument);
}

#[test]
fn readdir_pages_through_100k_entries() {
    let mut ns = small();
    let d = ns.mkdir(ROOT_INO, b"big", attrs(), 1).unwrap();
    const N: usize = 100_000;
    for i in 0..N {
        ns.create(d.ino, format!("file-{i:06}").as_bytes(), attrs(), true, 2).unwrap();
    }
    let mut after = Vec::new();
    let mut seen = 0usize;
    let mut pages = 0;
    loop {
        let (page, more) = ns.readdir(d.ino, &after, 1000).unwrap();
        assert!(page.len() <= 1000);
        for (name, _, kind) in &page {
            assert_eq!(name, format!("file-{seen:06}").as_bytes());
            assert_eq!(*kind, Kind::Regular);
            seen += 1;
        }
        pages += 1;
        match page.last() {
            Some((name, _, _)) if more => after = name.clone(),
            _ => break,
        }
    }
    assert_eq!((seen, pages), (N, N / 1000));
    // A huge limit is capped, and a cursor past the end is an empty last page.
    let (page, more) = ns.readdir(d.ino, b"", usize::MAX).unwrap();
    assert_eq!((page.len(), more), (10_000, true));
    assert_eq!(ns.readdir(d.ino, b"zzz", 10).unwrap(), (vec![], false));
}

#[test]
fn mknod_makes_special_files_without_data() {
    let mut ns = small();
    for (i, kind) in [Kind::Fifo, Kind::Socket, Kind::CharDevice, Kind::BlockDevice].into_iter().enumerate() {
        let name = format!("s{i}").into_bytes();
        let s = ns.mknod(ROOT_INO, &name, kind, NewInode { mode: 0o10640, ..attrs() }, 0x1234_5678, 5).unwrap();
        assert_eq!((s.kind, s.mode, s.size, s.nlink, s.uid, s.gid), (kind, 0o640, 0, 1, 1, 1));
        assert!(s.key.is_none() && s.chunks.is_empty());
        assert_eq!((s.atime_ns, s.mtime_ns, s.ctime_ns), (5, 5, 5));
        // Only devices keep a device number.
        let devices = matches!(kind, Kind::CharDevice | Kind::BlockDevice);
        assert_eq!(s.rdev, if devices { 0x1234_5678 } else { 0 });
        assert_eq!(ns.lookup(ROOT_INO, &name).unwrap(), &s);
        let (page, _) = ns.readdir(ROOT_INO, b"", 100).unwrap();
        assert!(page.contains(&(name, s.ino, kind)));
    }
    let root = ns.get(ROOT_INO).unwrap();
    assert_eq!((root.nlink, root.mtime_ns), (2, 5), "new entries touch the parent, not its link count");
}

#[test]
fn mknod_errors() {
    let mut ns = small();
    let fifo = |ns: &mut Namespace, parent, name: &[u8]| ns.mknod(parent, name, Kind::Fifo, attrs(), 0, 2);
    for kind in [Kind::Regular, Kind::Directory, Kind::Symlink] {
        assert_eq!(code(ns.mknod(ROOT_INO, b"x", kind, attrs(), 0, 1)), ErrorCode::InvalidArgument);
    }
    assert!(ns.lookup(ROOT_INO, b"x").is_err(), "a refused mknod leaves nothing behind");
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    let p = fifo(&mut ns, ROOT_INO, b"p").unwrap();
    for existing in [b"f", b"d", b"p"] {
        assert_eq!(code(fifo(&mut ns, ROOT_INO, existing)), ErrorCode::AlreadyExists);
    }
    for bad in [&b""[..], b".", b"..", b"a/b"] {
        assert_eq!(code(fifo(&mut ns, ROOT_INO, bad)), ErrorCode::InvalidArgument);
    }
    assert_eq!(code(fifo(&mut ns, ROOT_INO, &[b'n'; MAX_NAME_LEN + 1])), ErrorCode::NameTooLong);
    assert_eq!(code(fifo(&mut ns, f.ino, b"x")), ErrorCode::NotADirectory);
    assert_eq!(code(fifo(&mut ns, p.ino, b"x")), ErrorCode::NotADirectory, "a fifo is not a directory");
    assert_eq!(code(fifo(&mut ns, 999, b"x")), ErrorCode::NotFound);
}

#[test]
fn special_files_link_unlink_rename_and_setattr_like_files() {
    let mut ns = small();
    let d = ns.mkdir(ROOT_INO, b"d", attrs(), 1).unwrap();
    let dev = ns.mknod(ROOT_INO, b"dev", Kind::BlockDevice, attrs(), 0x0801, 1).unwrap();
    // Hard links count.
    assert_eq!(ns.link(dev.ino, d.ino, b"dev2", 2).unwrap().nlink, 2);
    assert_eq!(ns.get(dev.ino).unwrap().ctime_ns, 2);
    // chmod/chown/utimens, but no size.
    let set = SetAttrs { mode: Some(0o600), uid: Some(7), gid: Some(8), mtime_ns: Some(9), ..Default::default() };
    let (a, released) = ns.set_attr(dev.ino, &set, 3).unwrap();
    assert_eq!((a.mode, a.uid, a.gid, a.mtime_ns, a.ctime_ns, a.rdev), (0o600, 7, 8, 9, 3, 0x0801));
    assert!(released.chunks.is_empty());
    let truncate = SetAttrs { size: Some(0), ..Default::default() };
    assert_eq!(code(ns.set_attr(dev.ino, &truncate, 4)), ErrorCode::InvalidArgument);
    // No data and no target.
    let c = ChunkRef { index: 0, version: 1, sealed_len: 1, pg: 0, format: 2, data_shards: 0 };
    assert_eq!(code(ns.commit_chunk(dev.ino, c, 10, None, 4)), ErrorCode::IsADirectory);
    assert_eq!(code(ns.readlink(dev.ino)), ErrorCode::InvalidArgument);
    assert_eq!(code(ns.rmdir(ROOT_INO, b"dev", 4)), ErrorCode::NotADirectory);
    // Rename: over a file (which goes), never over a directory.
    let f = ns.create(ROOT_INO, b"f", attrs(), true, 1).unwrap();
    ns.rename(ROOT_INO, b"dev", ROOT_INO, b"f", 5).unwrap();
    assert!(ns.get(f.ino).is_err());
    assert_eq!(ns.lookup(ROOT_INO, b"f").unwrap().ino, dev.ino);
    assert_eq!(code(ns.rename(ROOT_INO, b"f", ROOT_INO, b"d", 6)), ErrorCode::IsADirectory);
    let sock = ns.mknod(ROOT_INO, b"sock", Kind::Socket, attrs(), 0, 6).unwrap();
    ns.rename(ROOT_INO, b"sock", d.ino, b"dev2", 7).unwrap();
    assert_eq!(ns.get(dev.ino).unwrap().nlink, 1, "replacing a link drops one count");
    assert_eq!(ns.lookup(d.ino, b"dev2").unwrap().ino, sock.ino);
    // Unlinking the last name removes it; an open one stays until released.
    ns.open(sock.ino, 1).unwrap();
    assert!(ns.unlink(d.ino, b"dev2", 8).unwrap().chunks.is_empty());
    assert_eq!(ns.get(sock.ino).unwrap().nlink, 0);
    ns.release(sock.ino, 1).unwrap();
    assert!(ns.get(sock.ino).is_err());
    ns.unlink(ROOT_INO, b"f", 9).unwrap();
    assert!(ns.get(dev.ino).is_err());
    assert_eq!(ns.inode_count(), 2, "root and d");
}

#[test]
fn setgid_directory_gives_its_group_and_bit_to_new_entries() {
    let mut ns = small();
    let plain = ns.mkdir(ROOT_INO, b"plain", NewInode { mode: 0o755, key: None, ..attrs() }, 1).unwrap();
    let f = ns.create(plain.ino, b"f", NewInode { gid: 5, ..attrs() }, true, 2).unwrap();
    assert_eq!(f.gid, 5, "an ordinary directory keeps the caller's group");

    let shared = ns.mkdir(ROOT_INO, b"shared", NewInode { mode: 0o2775, gid: 9, key: None, ..attrs() }, 3).unwrap();
    assert_eq!(shared.mode, 0o2775);
    let f = ns.create(shared.ino, b"f", NewInode { gid: 5, ..attrs() }, true, 4).unwrap();
    assert_eq!((f.gid, f.mode), (9, 0o644), "a file takes the directory's group, not its set-group-id bit");
    let d = ns.mkdir(shared.ino, b"d", NewInode { mode: 0o755, gid: 5, key: None, ..attrs() }, 5).unwrap();
    assert_eq!((d.gid, d.mode), (9, 0o2755), "a directory takes the group and the bit");
    let l = ns.symlink(shared.ino, b"l", b"f", NewInode { gid: 5, key: None, ..attrs() }, 6).unwrap();
    assert_eq!(l.gid, 9);
    let n = ns.mknod(shared.ino, b"n", Kind::Fifo, NewInode { gid: 5, key: None, ..attrs() }, 0, 7).unwrap();
    assert_eq!(n.gid, 9);
}
