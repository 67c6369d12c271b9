//! Write one chunk: seal, erasure-code, send k+m shards in parallel, commit.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use shardline_crypto::{seal_chunk_padded, ChunkAad, SEAL_OVERHEAD};
use shardline_proto::v1 as pb;
use shardline_types::ShardKey;

use crate::client::{FileCtx, Inner};
use crate::shard_io;
use crate::ClientError;

/// Write `plaintext` as a new version of chunk `index` of the file and
/// commit it with the file's size becoming at least `new_size`.
pub(crate) async fn write_chunk(
    inner: &Arc<Inner>,
    ctx: &Arc<FileCtx>,
    index: u64,
    plaintext: Bytes,
    new_size: u64,
) -> Result<(), ClientError> {
    let version = loop {
        let v = rand::random::<u64>();
        if v != 0 {
            break v;
        }
    };
    let sealed_len = plaintext.len() + SEAL_OVERHEAD;
    let shards = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || {
            let cell = ctx.codec.cell_size(sealed_len);
            let aad = ChunkAad { file_id: ctx.ino, chunk_index: index, version, key_id: &ctx.key_id };
            let sealed = seal_chunk_padded(&ctx.dek, &aad, &plaintext, cell * ctx.codec.data_shards());
            ctx.codec.encode(Bytes::from(sealed))
        })
        .await
        .map_err(|e| ClientError::Internal(format!("encode task: {e}")))??
    };
    let view = inner.placement();
    let pg = view.pg_for(ctx.ino, index)?;
    let targets = view.targets(pg, shards.len())?;
    let epoch = view.epoch;
    let key = |i: usize| ShardKey { file_id: ctx.ino, chunk_index: index, version, shard_index: i as u32 };
    let results = join_all(shards.into_iter().enumerate().map(|(i, s)| {
        let (pool, addr, k) = (&inner.pool, &targets[i], key(i));
        async move { shard_io::put(pool, addr, &k, s, epoch).await }
    }))
    .await;
    if let Some((i, e)) = results.iter().enumerate().find_map(|(i, r)| r.as_ref().err().map(|e| (i, e.clone()))) {
        // Nothing was committed: the written shards are garbage; drop them.
        let written: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
        for j in written {
            let _ = shard_io::delete(&inner.pool, &targets[j], &key(j)).await;
        }
        let detail =
            if e.code == shardline_types::ErrorCode::NoSpace { format!("no space left: {e}") } else { e.to_string() };
        return Err(ClientError::WriteFailed { file_id: ctx.ino, chunk_index: index, shard_index: i, detail });
    }
    let chunk = pb::Chunk { index, version, sealed_len: sealed_len as u32, pg };
    let resp = inner
        .meta
        .call(pb::meta_request::Body::CommitChunk(pb::CommitChunk {
            ino: ctx.ino,
            chunk: Some(chunk),
            new_size,
            epoch,
        }))
        .await?;
    if let Some(pb::meta_response::Body::Released(r)) = resp.body {
        inner.release(r);
    }
    Ok(())
}
