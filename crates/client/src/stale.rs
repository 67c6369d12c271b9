//! Telling a read that failed because its snapshot went stale from one that
//! failed for want of servers.
//!
//! A reader holds a snapshot of a file's chunk list (the versions current
//! when it opened). Opens by path are not registered with the metadata
//! service, so another client may meanwhile remove the file, rename another
//! over it, or rewrite a chunk: the old versions' shards are then released
//! and deleted, and the metadata service no longer knows the inode. A read
//! of such a snapshot fails; this names that failure for what it is,
//! [`ClientError::Stale`] (ESTALE, as NFS reports it), instead of "not
//! found" for a path that still exists or "unavailable" for a healthy
//! cluster. [`crate::Client::read_file`] reopens the path and reads the new
//! file; a ranged reader gets the error and may reopen.

use std::sync::Arc;

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::ErrorCode;

use crate::client::Inner;
use crate::ClientError;

/// Why a read of `chunk` (from the snapshot of file `ino`) failed: `e`, or
/// [`ClientError::Stale`] if the file or that chunk version is gone. Only
/// errors a stale snapshot can cause are looked into (one metadata read).
pub(crate) async fn explain(inner: &Arc<Inner>, ino: u64, chunk: &pb::Chunk, e: ClientError) -> ClientError {
    if !may_be_stale(&e) {
        return e;
    }
    let now = inner.meta.call(Body::GetChunks(pb::GetChunks { ino, from_index: chunk.index, limit: 1 })).await;
    match now {
        Err(m) if m.code() == ErrorCode::NotFound => {
            ClientError::Stale { file_id: ino, detail: "the file was removed or replaced since it was opened".into() }
        }
        Ok(pb::MetaResponse { body: Some(RBody::Chunks(list)), .. }) => {
            let current = list.chunks.iter().find(|c| c.index == chunk.index).map(|c| c.version);
            if current == Some(chunk.version) {
                e
            } else {
                ClientError::Stale {
                    file_id: ino,
                    detail: format!("chunk {} was rewritten or cut since the file was opened", chunk.index),
                }
            }
        }
        _ => e,
    }
}

/// Errors a released chunk version or a deleted inode produce.
fn may_be_stale(e: &ClientError) -> bool {
    match e {
        ClientError::Meta(m) => m.code() == ErrorCode::NotFound,
        ClientError::Unavailable { .. } => true,
        _ => false,
    }
}
