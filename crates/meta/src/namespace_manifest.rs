//! Files' integrity manifests (docs/security.md, "File integrity"), as the
//! service sees them: opaque MACs it cannot make, kept beside the inode,
//! with a sequence number it compare-and-swaps on. A file whose key has
//! wrap format 2 (`FileKey::manifest_required`) is created with manifest
//! sequence 0, and every change of its chunk list or size (`CommitChunk`, a
//! `SetAttr` with a size) must carry the manifest after it, numbered one
//! above the stored one; any other number is refused `STALE_EPOCH` with
//! nothing changed, and the writer reads the file again and retries, so
//! concurrent writers merge. Files with older keys carry none, as before.
//!
//! Nothing the service does on its own changes a chunk's (index, version)
//! or a file's size: rebuild, scrub repair, drains and rebalances move
//! shards of the same version; garbage collection deletes versions no file
//! refers to; re-wrapping a key changes neither (and must keep the format).

use shardline_types::ErrorCode;

use super::{FileKey, Inode, OpError, OpResult, StoredManifest};

/// The manifest format this build accepts (`crypto::MANIFEST_FORMAT_V1`).
const FORMAT_V1: u32 = 1;
/// Length of a manifest's MAC (HMAC-SHA256).
const MAC_LEN: usize = 32;

fn check_shape(m: &StoredManifest) -> OpResult<()> {
    if m.format != FORMAT_V1 {
        return Err(OpError::new(ErrorCode::InvalidArgument, format!("unknown manifest format {}", m.format)));
    }
    if m.mac.len() != MAC_LEN {
        return Err(OpError::new(ErrorCode::InvalidArgument, "a manifest's MAC is 32 bytes"));
    }
    Ok(())
}

/// A new file's manifest: sequence 0 when its key needs one, none otherwise.
pub(super) fn check_new(key: &FileKey, m: Option<&StoredManifest>) -> OpResult<()> {
    match (key.manifest_required(), m) {
        (false, None) => Ok(()),
        (false, Some(_)) => Err(OpError::new(ErrorCode::InvalidArgument, "a manifest for a key that needs none")),
        (true, None) => Err(OpError::new(ErrorCode::InvalidArgument, "a key of wrap format 2 needs a manifest")),
        (true, Some(m)) => {
            check_shape(m)?;
            if m.seq != 0 {
                return Err(OpError::new(ErrorCode::InvalidArgument, "a new file's manifest has sequence 0"));
            }
            Ok(())
        }
    }
}

/// A change of `inode`'s chunk list or size carrying `m`: refused unless
/// `m` is present exactly when the file needs one and is numbered one
/// above the stored manifest (a missing stored one counts as 0).
pub(super) fn check_update(inode: &Inode, m: Option<&StoredManifest>) -> OpResult<()> {
    let required = inode.key.as_ref().is_some_and(FileKey::manifest_required);
    match (required, m) {
        (false, None) => Ok(()),
        (false, Some(_)) => Err(OpError::new(ErrorCode::InvalidArgument, "a manifest for a file that needs none")),
        (true, None) => Err(OpError::new(
            ErrorCode::InvalidArgument,
            format!("file {} needs its manifest with every change of its chunks or size", inode.ino),
        )),
        (true, Some(m)) => {
            check_shape(m)?;
            let stored = inode.manifest.as_ref().map_or(0, |s| s.seq);
            if stored.checked_add(1) != Some(m.seq) {
                return Err(OpError::new(
                    ErrorCode::StaleEpoch,
                    format!(
                        "file {}'s manifest is at sequence {stored}; the change was made on another (re-read the file)",
                        inode.ino
                    ),
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChunkRef, Namespace, NewInode};
    use super::*;
    use shardline_types::{Layout, ROOT_INO};

    fn key(format: u32) -> FileKey {
        FileKey { kek_id: "k".into(), kek_version: 1, suite: 1, wrapped: vec![1; 72], format }
    }

    fn m(seq: u64) -> StoredManifest {
        StoredManifest { format: 1, seq, mac: vec![seq as u8; 32] }
    }

    fn chunk(index: u64, version: u64) -> ChunkRef {
        ChunkRef { index, version, sealed_len: 100, pg: 0, format: 2, data_shards: 0 }
    }

    fn file(ns: &mut Namespace, name: &[u8], format: u32, manifest: Option<StoredManifest>) -> OpResult<u64> {
        let attrs = NewInode { mode: 0o644, uid: 0, gid: 0, key: Some(key(format)), manifest };
        Ok(ns.create(ROOT_INO, name, attrs, true, 1)?.ino)
    }

    #[test]
    fn a_file_needing_a_manifest_is_created_with_sequence_0() {
        let mut ns = Namespace::new(Layout::default());
        assert_eq!(file(&mut ns, b"a", 2, None).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(file(&mut ns, b"a", 2, Some(m(1))).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(file(&mut ns, b"a", 1, Some(m(0))).unwrap_err().code, ErrorCode::InvalidArgument);
        let bad = StoredManifest { mac: vec![0; 31], ..m(0) };
        assert_eq!(file(&mut ns, b"a", 2, Some(bad)).unwrap_err().code, ErrorCode::InvalidArgument);
        let ino = file(&mut ns, b"a", 2, Some(m(0))).unwrap();
        assert_eq!(ns.get(ino).unwrap().manifest, Some(m(0)));
        // Keys from before wrap formats (0) and format 1 need none.
        let old = file(&mut ns, b"old", 0, None).unwrap();
        assert_eq!(ns.get(old).unwrap().manifest, None);
    }

    #[test]
    fn commits_and_truncates_compare_and_swap_the_sequence() {
        let mut ns = Namespace::new(Layout::default());
        let ino = file(&mut ns, b"a", 2, Some(m(0))).unwrap();
        let cs = u64::from(Layout::default().chunk_size);
        // Without a manifest, or with a stale or skipped number: refused, nothing changed.
        assert_eq!(ns.commit_chunk(ino, chunk(0, 5), 10, None, 2).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(ns.commit_chunk(ino, chunk(0, 5), 10, Some(m(0)), 2).unwrap_err().code, ErrorCode::StaleEpoch);
        assert_eq!(ns.commit_chunk(ino, chunk(0, 5), 10, Some(m(2)), 2).unwrap_err().code, ErrorCode::StaleEpoch);
        assert!(ns.get(ino).unwrap().chunks.is_empty() && ns.get(ino).unwrap().size == 0);
        ns.commit_chunk(ino, chunk(0, 5), 10, Some(m(1)), 2).unwrap();
        ns.commit_chunk(ino, chunk(1, 6), cs + 10, Some(m(2)), 3).unwrap();
        // A second writer that read sequence 1 loses the race and must re-read.
        assert_eq!(ns.commit_chunk(ino, chunk(0, 7), 10, Some(m(2)), 4).unwrap_err().code, ErrorCode::StaleEpoch);
        let shrink = |manifest| super::super::SetAttrs { size: Some(5), manifest, ..Default::default() };
        assert_eq!(ns.set_attr(ino, &shrink(None), 5).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(ns.set_attr(ino, &shrink(Some(m(2))), 5).unwrap_err().code, ErrorCode::StaleEpoch);
        assert_eq!(ns.get(ino).unwrap().size, cs + 10, "a refused truncate changed nothing");
        let (attr, released) = ns.set_attr(ino, &shrink(Some(m(3))), 5).unwrap();
        assert_eq!((attr.size, attr.manifest), (5, Some(m(3))));
        assert_eq!(released.chunks.len(), 1);
        // Attribute changes without a size need no manifest.
        let chmod = super::super::SetAttrs { mode: Some(0o600), ..Default::default() };
        assert_eq!(ns.set_attr(ino, &chmod, 6).unwrap().0.manifest, Some(m(3)));
    }

    #[test]
    fn files_from_before_manifests_change_as_before() {
        let mut ns = Namespace::new(Layout::default());
        let ino = file(&mut ns, b"old", 0, None).unwrap();
        ns.commit_chunk(ino, chunk(0, 5), 10, None, 2).unwrap();
        assert_eq!(ns.commit_chunk(ino, chunk(0, 6), 10, Some(m(1)), 3).unwrap_err().code, ErrorCode::InvalidArgument);
        let shrink = super::super::SetAttrs { size: Some(0), ..Default::default() };
        ns.set_attr(ino, &shrink, 4).unwrap();
        assert_eq!(ns.get(ino).unwrap().manifest, None);
    }
}
