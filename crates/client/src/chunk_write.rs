//! Write one chunk: seal, erasure-code, send k+m shards in parallel, commit.
//!
//! New versions are sealed in chunk format v2 (segments with their own
//! tags, `shardline_crypto::seal_segments`) under the file's suite, and the
//! commit records the format so readers pick the matching decoder.
//!
//! Files with a manifest (wrap format 2) commit with the manifest after the
//! commit in the same request (`manifest.rs`); a commit refused because
//! another writer changed the file first is re-based on the file as it is
//! now, without sending the shards again.
//!
//! The chunk is sealed and coded once; if a target is down or the map moved
//! (stale epoch), the same shards are sent again to the refreshed placement
//! until the write window closes; a cluster with no map yet (data servers
//! still registering, just after start-up) is waited for within it too. Re-sending identical bytes under the same
//! shard key is idempotent, and nothing is visible before the commit.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::join_all;
use shardline_crypto::{seal_chunk_padded, seal_segments, ChunkAad, ChunkFormat, SegmentLayout, SEAL_OVERHEAD};
use shardline_proto::v1 as pb;
use shardline_rpc::shard_client as shard_io;
use shardline_rpc::MetaCallError;
use shardline_types::{ErrorCode, ShardKey};

use crate::caps::write_cap;
use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::manifest::{self, Change};
use crate::placement::targets_for_write;
use crate::ClientError;

/// A fresh chunk version: random, never 0.
pub(crate) fn new_version() -> u64 {
    loop {
        let v = rand::random::<u64>();
        if v != 0 {
            return v;
        }
    }
}

/// Write `plaintext` as a new version of chunk `index` of the file and
/// commit it with the file's size becoming at least `new_size`.
pub(crate) async fn write_chunk(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    index: u64,
    plaintext: Bytes,
    new_size: u64,
) -> Result<(), ClientError> {
    write_chunk_gated(inner, ctx, index, plaintext, new_size, std::future::ready(Ok(()))).await.map(|_| ())
}

/// [`write_chunk`], with the commit held until `gate` resolves (awaited
/// once, after every shard is stored): open files commit chunks that grow
/// the file in order, so the size never covers bytes not committed yet. A
/// gate that fails abandons the version (its shards are deleted). On
/// success, the file's attributes right after the commit, if the metadata
/// service sent them.
pub(crate) async fn write_chunk_gated(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    index: u64,
    plaintext: Bytes,
    new_size: u64,
    gate: impl std::future::Future<Output = Result<(), ClientError>>,
) -> Result<Option<pb::Attr>, ClientError> {
    let mut gate = Some(gate);
    // A new file's first chunk: the version its create was given a put
    // capability for (used while well before its expiry).
    let first_put = if index == 0 { ctx.take_first_put() } else { None };
    let first_put = first_put.filter(|(_, cap)| crate::caps::fresh(cap));
    let version = first_put.as_ref().map_or_else(new_version, |(v, _)| *v);
    let format = ctx.write_format;
    let sealed_len = match format {
        ChunkFormat::V1 => plaintext.len() + SEAL_OVERHEAD,
        ChunkFormat::V2 => SegmentLayout::for_plaintext(plaintext.len()).sealed_len(),
    };
    let sealed_len_wire = u32::try_from(sealed_len).map_err(|_| ClientError::TooLarge { size: sealed_len as u64 })?;
    let small = SmallFile { max: inner.cfg.small_file_max, chunk_size: ctx.chunk_size, k: ctx.codec.data_shards() };
    let as_copies = small.stored_as_copies(index, new_size, plaintext.len());
    let encode = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || {
            let codec = if as_copies { &ctx.copies } else { &ctx.codec };
            let padded = codec.cell_size(sealed_len) * codec.data_shards();
            let aad = ChunkAad { file_id: ctx.ino, chunk_index: index, version, key_id: &ctx.key_id };
            let sealed = match format {
                ChunkFormat::V1 => seal_chunk_padded(&ctx.dek, &aad, &plaintext, padded),
                ChunkFormat::V2 => {
                    // Sealed straight into the buffer the coder cuts into
                    // cells; only the padding is zero-filled.
                    let layout = SegmentLayout::for_plaintext(plaintext.len());
                    let mut out = Vec::with_capacity(padded);
                    seal_segments(&ctx.dek, ctx.suite, &aad, &layout, &plaintext, &mut out);
                    out.resize(padded, 0);
                    out
                }
            };
            codec.encode(Bytes::from(sealed))
        })
    };
    // The put capability is asked for while the chunk is sealed and coded,
    // so its round trip to the metadata service costs no time of its own.
    let ask_cap = async {
        match first_put {
            Some((_, cap)) => Ok(Some(cap)),
            None => write_cap(inner, ctx.ino, index, version).await,
        }
    };
    let (shards, first_cap) = tokio::join!(encode, ask_cap);
    let shards = shards.map_err(|e| ClientError::Internal(format!("encode task: {e}")))??;
    let mut next_cap = Some(first_cap?);
    let codec = if as_copies { &ctx.copies } else { &ctx.codec };
    let ec = (codec.data_shards() as u32, codec.parity_shards() as u32);
    // 0 on the wire: the file's layout (as every chunk before copies).
    let data_shards = if as_copies { 1 } else { 0 };
    let key = |i: usize| ShardKey { file_id: ctx.ino, chunk_index: index, version, shard_index: i as u32 };
    let deadline = Instant::now() + inner.cfg.write_retry_window;
    let mut written: Vec<(String, ShardKey)> = Vec::new();
    let mut cap: Option<pb::ShardCap>;
    loop {
        let (view, pg, targets) = targets_for_write(inner, ctx.ino, index, shards.len(), deadline).await?;
        let epoch = view.epoch;
        // A fresh put capability for every retry: it carries the current epoch.
        cap = match next_cap.take() {
            Some(c) => c,
            None => write_cap(inner, ctx.ino, index, version).await?,
        };
        let results = join_all(shards.iter().enumerate().map(|(i, s)| {
            let (pool, addr, k, s, cap) = (&inner.pool, &targets[i], key(i), s.clone(), cap.as_ref());
            async move { shard_io::put(pool, addr, &k, s, cap, epoch, ec).await }
        }))
        .await;
        for (i, r) in results.iter().enumerate() {
            if r.is_ok() && !written.iter().any(|(a, k)| *a == targets[i] && *k == key(i)) {
                written.push((targets[i].clone(), key(i)));
            }
        }
        let failure = results.iter().enumerate().find_map(|(i, r)| r.as_ref().err().map(|e| (i, e.clone())));
        let retry_reason = match failure {
            None => {
                if let Some(g) = gate.take() {
                    if let Err(e) = g.await {
                        discard_now(inner, written, cap.as_ref()).await;
                        return Err(e);
                    }
                }
                let chunk = pb::Chunk {
                    index,
                    version,
                    sealed_len: sealed_len_wire,
                    pg,
                    format: format.to_wire(),
                    cap: None,
                    data_shards,
                };
                // The manifest after this commit goes in the same request
                // (re-based and sent again if another writer got in first).
                let change = Change::Commit { index, version, new_size };
                let sent = manifest::change(inner, ctx, change, |manifest| {
                    let chunk = Some(chunk.clone());
                    let commit = pb::CommitChunk { ino: ctx.ino, chunk, new_size, epoch: view.epoch, manifest };
                    inner.send_own_change(ctx.ino, pb::meta_request::Body::CommitChunk(commit))
                })
                .await;
                let sent = match sent {
                    Ok(r) => r,
                    Err(e) => {
                        // The file's manifest could not be read or did not
                        // verify: no commit was applied.
                        discard_now(inner, written, cap.as_ref()).await;
                        return Err(e);
                    }
                };
                match sent {
                    Ok(resp) => {
                        let mut attr = None;
                        if let Some(pb::meta_response::Body::Released(mut r)) = resp.body {
                            attr = r.attr.take();
                            inner.release(r);
                        }
                        // Shards left on targets that are no longer in the
                        // chunk's group are garbage; drop them.
                        let keep: Vec<(String, ShardKey)> =
                            targets.iter().enumerate().map(|(i, a)| (a.clone(), key(i))).collect();
                        discard(inner, written.into_iter().filter(|w| !keep.contains(w)).collect(), cap);
                        return Ok(attr);
                    }
                    Err(MetaCallError::Service { code: ErrorCode::StaleEpoch, message }) => message,
                    Err(e) => {
                        // Only a definite refusal proves the version is not
                        // live. A lost reply (timeout, unreachable, a reply
                        // that did not decode) may follow a commit that
                        // applied: its shards are left to GC, which deletes
                        // them after its grace period only if the metadata
                        // service says the version is not live.
                        if commit_definitely_refused(&e) {
                            discard_now(inner, written, cap.as_ref()).await;
                        } else {
                            tracing::warn!(
                                file_id = ctx.ino,
                                chunk = index,
                                version,
                                "chunk commit outcome unknown; its shards are left to garbage collection"
                            );
                        }
                        return Err(e.into());
                    }
                }
            }
            Some((i, e)) => {
                let retry = matches!(e.code, ErrorCode::Unavailable | ErrorCode::StaleEpoch | ErrorCode::Corrupt);
                if !retry || Instant::now() > deadline {
                    discard_now(inner, written, cap.as_ref()).await;
                    let detail =
                        if e.code == ErrorCode::NoSpace { format!("no space left: {e}") } else { e.to_string() };
                    return Err(ClientError::WriteFailed {
                        file_id: ctx.ino,
                        chunk_index: index,
                        shard_index: i,
                        detail,
                    });
                }
                e.detail
            }
        };
        if Instant::now() > deadline {
            discard_now(inner, written, cap.as_ref()).await;
            return Err(ClientError::WriteFailed {
                file_id: ctx.ino,
                chunk_index: index,
                shard_index: 0,
                detail: format!("placement kept changing: {retry_reason}"),
            });
        }
        tracing::debug!(file_id = ctx.ino, chunk = index, reason = %retry_reason, "retrying chunk write on a fresh map");
        let before = view.epoch;
        let fresh = inner.refresh_placement().await?;
        if fresh.epoch == before {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// Whether a failed `CommitChunk` certainly did not apply: the metadata
/// service answered with an error of the request itself. Transport failures
/// and `Unavailable`/`Internal` answers leave the outcome unknown.
fn commit_definitely_refused(e: &MetaCallError) -> bool {
    match e {
        MetaCallError::Service { code, .. } => !matches!(code, ErrorCode::Unavailable | ErrorCode::Internal),
        MetaCallError::Unreachable(_) | MetaCallError::Rpc(_) => false,
    }
}

/// Delete shards no committed version refers to before reporting the
/// failure, so a caller that retries does not race the deletions.
/// `cap`: the put capability they were written with (it deletes too).
async fn discard_now(inner: &Arc<Inner>, shards: Vec<(String, ShardKey)>, cap: Option<&pb::ShardCap>) {
    for (addr, key) in shards {
        let _ = shard_io::delete(&inner.pool, &addr, &key, cap).await;
    }
}

/// Delete shards nothing will ever refer to, in the background.
fn discard(inner: &Arc<Inner>, shards: Vec<(String, ShardKey)>, cap: Option<pb::ShardCap>) {
    if shards.is_empty() {
        return;
    }
    let inner = inner.clone();
    tokio::spawn(async move {
        for (addr, key) in shards {
            let _ = shard_io::delete(&inner.pool, &addr, &key, cap.as_ref()).await;
        }
    });
}

/// Which chunks of a file are stored as m+1 whole copies instead of k+m
/// cells: the one chunk of a file of at most `max` bytes (0: never) that
/// ends inside its first chunk, under a layout with k > 1. A read of it is
/// then one shard get instead of k (docs/performance.md, "Small files
/// stored as copies"); it takes (m+1)·k/(k+m) times the raw space of k+m
/// cells (2× under 4+2) and survives the same m lost servers. A file that
/// grows past the limit later rewrites the chunk in its layout.
struct SmallFile {
    max: u64,
    chunk_size: usize,
    k: usize,
}

impl SmallFile {
    /// Chunk `index` holding `plain_len` bytes, of a file whose size becomes
    /// at least `new_size`.
    fn stored_as_copies(&self, index: u64, new_size: u64, plain_len: usize) -> bool {
        index == 0 && self.k > 1 && plain_len < self.chunk_size && new_size.max(plain_len as u64) <= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::SmallFile;

    #[test]
    fn only_the_one_chunk_of_a_small_file_is_stored_as_copies() {
        let small = SmallFile { max: 128 << 10, chunk_size: 4 << 20, k: 4 };
        assert!(small.stored_as_copies(0, 100 << 10, 100 << 10));
        assert!(small.stored_as_copies(0, 128 << 10, 1), "the limit is inclusive");
        assert!(!small.stored_as_copies(0, (128 << 10) + 1, 1), "a file past the limit");
        assert!(!small.stored_as_copies(0, 10, 4 << 20), "a whole chunk rewritten by a short write");
        assert!(!small.stored_as_copies(1, 10, 10), "a later chunk of a sparse file");
        let tiny_chunks = SmallFile { chunk_size: 64 << 10, ..small };
        assert!(!tiny_chunks.stored_as_copies(0, 64 << 10, 64 << 10), "the first of several chunks");
        assert!(tiny_chunks.stored_as_copies(0, 1000, 1000));
        assert!(!SmallFile { max: 0, ..small }.stored_as_copies(0, 10, 10), "0 turns copies off");
        assert!(!SmallFile { k: 1, ..small }.stored_as_copies(0, 10, 10), "a k=1 layout is copies already");
    }
}
