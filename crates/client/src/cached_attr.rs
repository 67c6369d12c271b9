//! What the metadata cache keeps of a file's attributes: everything a stat
//! shows, in about half the bytes of the wire message (`pb::Attr`, 192
//! bytes, most of them the wrapped key and the manifest). A listing of
//! 100,000 entries keeps 100,000 of these. The wrapped key and the manifest
//! are left out and the key's presence is kept: an open reads those with
//! the chunk list. Whether the file has no extended attributes is kept
//! too: it answers `ls -l`'s two getxattr calls per entry.

use shardline_proto::v1 as pb;

/// See the module comment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedAttr {
    ino: u64,
    size: u64,
    atime_ns: i64,
    mtime_ns: i64,
    ctime_ns: i64,
    rdev: u64,
    kind: i32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    layout: Option<pb::Layout>,
    has_key: bool,
    no_xattrs: bool,
}

impl CachedAttr {
    pub(crate) fn new(a: &pb::Attr) -> Self {
        CachedAttr {
            ino: a.ino,
            size: a.size,
            atime_ns: a.atime_ns,
            mtime_ns: a.mtime_ns,
            ctime_ns: a.ctime_ns,
            rdev: a.rdev,
            kind: a.kind,
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            nlink: a.nlink,
            layout: a.layout,
            has_key: a.key.is_some(),
            no_xattrs: a.no_xattrs,
        }
    }

    /// The attributes as the wire message, with an empty key where the
    /// file has one and no manifest. Allocates nothing.
    pub(crate) fn to_wire(&self) -> pb::Attr {
        pb::Attr {
            ino: self.ino,
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            nlink: self.nlink,
            atime_ns: self.atime_ns,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            layout: self.layout,
            key: self.has_key.then(pb::WrappedKey::default),
            rdev: self.rdev,
            manifest: None,
            no_xattrs: self.no_xattrs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_all_a_stat_shows_whether_there_is_a_key_and_no_xattrs_in_less_than_half_the_bytes() {
        let key = pb::WrappedKey { kek_id: "kek-1".into(), kek_version: 3, wrapped: vec![1; 60], ..Default::default() };
        let manifest = pb::FileManifest::default();
        let a = pb::Attr {
            ino: 42,
            kind: pb::FileKind::Regular as i32,
            mode: 0o640,
            uid: 1000,
            gid: 100,
            size: 123_456,
            nlink: 2,
            atime_ns: -5,
            mtime_ns: 1_700_000_000_000_000_001,
            ctime_ns: 1_700_000_000_000_000_002,
            layout: Some(pb::Layout { chunk_size: 4 << 20, data_shards: 4, parity_shards: 2 }),
            key: Some(key),
            rdev: 0x0803,
            manifest: Some(manifest),
            no_xattrs: true,
        };
        let back = CachedAttr::new(&a).to_wire();
        assert_eq!(back, pb::Attr { key: Some(pb::WrappedKey::default()), manifest: None, ..a.clone() });
        let keyless = pb::Attr { key: None, manifest: None, ..a };
        assert_eq!(CachedAttr::new(&keyless).to_wire(), keyless);
        let with_xattrs = pb::Attr { no_xattrs: false, ..keyless };
        assert_eq!(CachedAttr::new(&with_xattrs).to_wire(), with_xattrs);
        assert!(std::mem::size_of::<CachedAttr>() * 2 <= std::mem::size_of::<pb::Attr>() + 16);
    }
}
