//! Files' integrity manifests on the client (docs/security.md, "File
//! integrity"; the format is `shardline_crypto::manifest`).
//!
//! A file whose key has wrap format 2 carries a manifest: a MAC under a key
//! derived from its DEK over its id, size, a sequence number and every
//! chunk's (index, version). Readers check the chunk list and size the
//! metadata service returned against it before reading anything
//! ([`verify`], through [`FileCtx::open`]), so a chunk rolled back to an
//! older version, a dropped chunk, a shrunk size or a missing manifest is
//! an integrity error (EIO through the mount), never old bytes or a hole.
//!
//! Writers keep the state they last verified or made ([`ManifestState`],
//! in the file's [`FileCtx`]) and send the manifest after their change in
//! the same request as the change ([`change`]: a chunk commit or a size
//! change). The metadata service applies it only if its sequence number is
//! the next one; a writer that lost a race to another reads the file again,
//! verifies it and retries on top of it, so concurrent writers merge.
//! Commits of one open file are sent one at a time (under the state's
//! lock); their shard uploads still overlap.

use std::collections::BTreeMap;
use std::future::Future;

use shardline_crypto::{ChunkDigest, Dek, Manifest, ManifestKey, MANIFEST_FORMAT_V1};
use shardline_proto::v1 as pb;
use shardline_rpc::MetaCallError;
use shardline_types::ErrorCode;

use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::ClientError;

/// Times a change is re-based on a newer manifest before giving up (each
/// costs a read of the chunk list: other writers kept winning).
const MAX_REBASES: usize = 64;

/// What a verified (or just written) manifest says: the file's size and
/// chunk versions at sequence `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestState {
    pub seq: u64,
    pub size: u64,
    /// Chunk index → version.
    pub chunks: BTreeMap<u64, u64>,
}

/// A change of the chunk list or size, as the metadata service applies it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change {
    /// `CommitChunk`: chunk `index` becomes `version`; the size becomes at
    /// least `new_size`.
    Commit { index: u64, version: u64, new_size: u64 },
    /// `SetAttr` with a size: chunks wholly at or past `size` go.
    Resize { size: u64 },
}

fn integrity(file_id: u64, detail: &str) -> ClientError {
    ClientError::Integrity { file_id, detail: detail.to_string() }
}

/// The manifest a new file is created with (sequence 0, size 0, no chunks,
/// file id 0: the id is not assigned yet).
pub(crate) fn initial(dek: &Dek) -> pb::FileManifest {
    let key = ManifestKey::derive(dek);
    let m = Manifest { file_id: 0, size: 0, seq: 0, chunks: ChunkDigest::of([]).unwrap_or_default() };
    pb::FileManifest { format: MANIFEST_FORMAT_V1, seq: 0, mac: key.mac(&m).to_vec() }
}

/// The file id a manifest of sequence `seq` binds.
fn bound_id(ino: u64, seq: u64) -> u64 {
    if seq == 0 {
        0
    } else {
        ino
    }
}

/// Check `attr` and its whole chunk list against the file's manifest.
/// `None`: the file needs none (its key predates manifests).
pub(crate) fn verify(
    key: Option<&ManifestKey>,
    attr: &pb::Attr,
    chunks: &[pb::Chunk],
) -> Result<Option<ManifestState>, ClientError> {
    let Some(key) = key else { return Ok(None) };
    let fail = |d: &str| integrity(attr.ino, d);
    let m = attr.manifest.as_ref().ok_or_else(|| fail("the file has no manifest though its key requires one"))?;
    if m.format != MANIFEST_FORMAT_V1 {
        return Err(fail(&format!("unknown manifest format {}", m.format)));
    }
    let digest = ChunkDigest::of(chunks.iter().map(|c| (c.index, c.version)))
        .ok_or_else(|| fail("the chunk list is out of order"))?;
    let stated = Manifest { file_id: bound_id(attr.ino, m.seq), size: attr.size, seq: m.seq, chunks: digest };
    if !key.verify(&stated, &m.mac) {
        return Err(fail("the chunk list or size does not match the file's manifest"));
    }
    Ok(Some(ManifestState {
        seq: m.seq,
        size: attr.size,
        chunks: chunks.iter().map(|c| (c.index, c.version)).collect(),
    }))
}

/// The manifest after `change` on `base`, for the request that makes it.
fn next(key: &ManifestKey, ino: u64, chunk_size: u64, base: &ManifestState, change: Change) -> pb::FileManifest {
    let seq = base.seq + 1;
    let (size, digest) = match change {
        Change::Commit { index, version, new_size } => {
            let mut d = ChunkDigest::default();
            let mut placed = false;
            for (&i, &v) in &base.chunks {
                if !placed && i >= index {
                    d.push(index, version);
                    placed = true;
                }
                if i != index {
                    d.push(i, v);
                }
            }
            if !placed {
                d.push(index, version);
            }
            (base.size.max(new_size), d.finish())
        }
        Change::Resize { size } => {
            let keep = size.div_ceil(chunk_size.max(1));
            (size, ChunkDigest::of(base.chunks.range(..keep).map(|(&i, &v)| (i, v))))
        }
    };
    // Built from a BTreeMap and one insertion at its place: always ordered.
    let m = Manifest { file_id: bound_id(ino, seq), size, seq, chunks: digest.unwrap_or_default() };
    pb::FileManifest { format: MANIFEST_FORMAT_V1, seq, mac: key.mac(&m).to_vec() }
}

/// `base` as the metadata service has it after applying `change`.
fn apply(base: &mut ManifestState, chunk_size: u64, change: Change) {
    base.seq += 1;
    match change {
        Change::Commit { index, version, new_size } => {
            base.chunks.insert(index, version);
            base.size = base.size.max(new_size);
        }
        Change::Resize { size } => {
            base.chunks.split_off(&size.div_ceil(chunk_size.max(1)));
            base.size = size;
        }
    }
}

/// Read the file's chunk list again and verify it.
async fn load(inner: &Inner, ctx: &FileCtx) -> Result<ManifestState, ClientError> {
    let (attr, chunks) = crate::chunk_list::get_chunks(inner, ctx.ino).await?;
    verify(ctx.manifest_key.as_ref(), &attr, &chunks)?.ok_or_else(|| integrity(ctx.ino, "the file needs no manifest"))
}

/// Send `change` with `send`, which makes the request carrying the manifest
/// after it (`None` for files that need none). On a stale sequence the
/// file is read again and the change re-based on it; a `STALE_EPOCH` with
/// the manifest unchanged is the request's own (a commit's placement) and
/// is returned. The outer error: the manifest could not be read or did not
/// verify (nothing was applied); the inner one: the request's.
pub(crate) async fn change<F, Fut>(
    inner: &Inner,
    ctx: &FileCtx,
    change: Change,
    mut send: F,
) -> Result<Result<pb::MetaResponse, MetaCallError>, ClientError>
where
    F: FnMut(Option<pb::FileManifest>) -> Fut,
    Fut: Future<Output = Result<pb::MetaResponse, MetaCallError>>,
{
    let Some(key) = ctx.manifest_key.as_ref() else { return Ok(send(None).await) };
    let cs = ctx.chunk_size as u64;
    let mut state = ctx.manifest.lock().await;
    for _ in 0..MAX_REBASES {
        let mut base = match state.take() {
            Some(b) => b,
            None => load(inner, ctx).await?,
        };
        match send(Some(next(key, ctx.ino, cs, &base, change))).await {
            Ok(resp) => {
                apply(&mut base, cs, change);
                *state = Some(base);
                return Ok(Ok(resp));
            }
            Err(MetaCallError::Service { code: ErrorCode::StaleEpoch, message }) => {
                let fresh = load(inner, ctx).await?;
                let moved = fresh.seq != base.seq;
                *state = Some(fresh);
                if !moved {
                    return Ok(Err(MetaCallError::Service { code: ErrorCode::StaleEpoch, message }));
                }
                tracing::debug!(file_id = ctx.ino, "file manifest moved on; re-basing the change");
            }
            // The outcome may be unknown (a lost reply): read the file
            // again before the next change.
            Err(e) => return Ok(Err(e)),
        }
    }
    Err(ClientError::Meta(MetaCallError::Service {
        code: ErrorCode::Unavailable,
        message: format!("file {} kept changing under this change", ctx.ino),
    }))
}

/// Seed the writer's state with one just verified (if no change holds it).
pub(crate) fn remember(ctx: &FileCtx, verified: Option<ManifestState>) {
    if let (Some(v), Ok(mut state)) = (verified, ctx.manifest.try_lock()) {
        *state = Some(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ino: u64, size: u64, m: pb::FileManifest) -> pb::Attr {
        pb::Attr { ino, size, manifest: Some(m), ..Default::default() }
    }

    fn chunk(index: u64, version: u64) -> pb::Chunk {
        pb::Chunk { index, version, ..Default::default() }
    }

    fn list(s: &ManifestState) -> Vec<pb::Chunk> {
        s.chunks.iter().map(|(&i, &v)| chunk(i, v)).collect()
    }

    #[test]
    fn changes_verify_as_the_service_applies_them_and_tampering_does_not() {
        let dek = Dek::generate();
        let key = ManifestKey::derive(&dek);
        let (ino, cs) = (42, 100);
        let first = initial(&dek);
        let mut s = verify(Some(&key), &attr(ino, 0, first), &[]).expect("verify").expect("state");
        // Out of order, over a gap, replacing, then a shrink and a growth.
        let changes = [
            Change::Commit { index: 3, version: 30, new_size: 350 },
            Change::Commit { index: 0, version: 1, new_size: 100 },
            Change::Commit { index: 1, version: 10, new_size: 150 },
            Change::Commit { index: 1, version: 11, new_size: 200 },
            Change::Resize { size: 150 },
            Change::Resize { size: 1000 },
            Change::Commit { index: 9, version: 90, new_size: 950 },
        ];
        for c in changes {
            let m = next(&key, ino, cs, &s, c);
            apply(&mut s, cs, c);
            let a = attr(ino, s.size, m.clone());
            assert_eq!(verify(Some(&key), &a, &list(&s)).expect("verifies").as_ref(), Some(&s), "{c:?}");
            // A chunk rolled back, dropped or moved, the size changed, the
            // manifest dropped or from another file: each refused.
            let mut rolled = list(&s);
            rolled[0].version ^= 1;
            let mut dropped = list(&s);
            dropped.remove(0);
            let shrunk = attr(ino, s.size - 1, m.clone());
            let other = attr(ino + 1, s.size, m.clone());
            let bare = pb::Attr { manifest: None, ..a.clone() };
            for (what, at, l) in [
                ("rolled back", &a, rolled),
                ("dropped", &a, dropped),
                ("shrunk", &shrunk, list(&s)),
                ("other file", &other, list(&s)),
                ("no manifest", &bare, list(&s)),
            ] {
                let got = verify(Some(&key), at, &l);
                assert!(matches!(got, Err(ClientError::Integrity { .. })), "{what} after {c:?}: {got:?}");
            }
        }
        assert_eq!(s.chunks.into_iter().collect::<Vec<_>>(), vec![(0, 1), (1, 11), (9, 90)]);
    }

    #[test]
    fn files_without_a_manifest_key_are_not_checked() {
        let a = pb::Attr { ino: 1, size: 5, ..Default::default() };
        assert_eq!(verify(None, &a, &[chunk(0, 1)]).expect("no check"), None);
    }
}
