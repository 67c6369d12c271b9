//! A file's attributes and whole chunk list, fetched in pages.
//!
//! One `GetChunks` reply carries at most a page of chunks (the metadata
//! service caps it), so a file of any size opens. Pages are separate reads:
//! if the file changes between them (its attributes differ from the first
//! page's), the walk starts again, so the list is one version of the file.
//!
//! A list that came whole in one granted page is kept in the coherent
//! metadata cache (`meta_cache_chunks.rs`): opening the unchanged file
//! again costs no round trip.

use std::sync::Arc;

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{code_from_wire, MetaCallError};

use crate::client::{unexpected, Inner};
use crate::ClientError;

/// Times the walk restarts because the file kept changing under it.
const MAX_RESTARTS: usize = 8;

/// The attributes and every committed chunk of `ino`, in index order.
pub(crate) async fn get_chunks(inner: &Inner, ino: u64) -> Result<(pb::Attr, Vec<pb::Chunk>), ClientError> {
    let caller = inner.meta.caller_key();
    let epoch = inner.placement().epoch;
    if let Some(list) = inner.mcache.chunk_list(ino, caller, shardline_crypto::now_ms(), epoch) {
        return Ok((*list).clone());
    }
    let page = inner.cfg.chunk_list_page.max(1);
    'restart: for _ in 0..MAX_RESTARTS {
        let (attr, mut chunks, mut more) = first_page(inner, ino, page, caller).await?;
        while more {
            let from = chunks.last().map_or(0, |c| c.index + 1);
            let (next_attr, next, next_more) = fetch(inner, ino, from, page).await?;
            if !same_version(&attr, &next_attr) {
                continue 'restart;
            }
            if next.first().is_some_and(|c| c.index < from) {
                return Err(unexpected());
            }
            chunks.extend(next);
            more = next_more;
        }
        return Ok((attr, chunks));
    }
    Err(ClientError::Meta(shardline_rpc::MetaCallError::Service {
        code: shardline_types::ErrorCode::Unavailable,
        message: format!("file {ino} kept changing while its chunk list was read"),
    }))
}

/// The first page of `ino`'s list, asked under the cache session if one
/// is open; a whole list granted is kept for `caller`.
async fn first_page(
    inner: &Inner,
    ino: u64,
    limit: u32,
    caller: u64,
) -> Result<(pb::Attr, Vec<pb::Chunk>, bool), ClientError> {
    let ticket = inner.mcache.ticket();
    let body = Body::GetChunks(pb::GetChunks { ino, from_index: 0, limit });
    let resp = inner.meta.call_cached(body, ticket.is_some()).await?;
    if let Some(e) = resp.error.as_ref() {
        return Err(MetaCallError::Service { code: code_from_wire(e.code), message: e.message.clone() }.into());
    }
    let Some(RBody::Chunks(list)) = resp.body.as_ref() else {
        return Err(unexpected());
    };
    let attr = list.attr.clone().ok_or_else(unexpected)?;
    if ticket.is_some() && !list.more && attr.ino == ino {
        let kept = Arc::new((attr.clone(), list.chunks.clone()));
        inner.mcache.keep_chunk_list(ticket, &resp, caller, kept);
    }
    let Some(RBody::Chunks(list)) = resp.body else {
        return Err(unexpected());
    };
    Ok((attr, list.chunks, list.more))
}

async fn fetch(
    inner: &Inner,
    ino: u64,
    from_index: u64,
    limit: u32,
) -> Result<(pb::Attr, Vec<pb::Chunk>, bool), ClientError> {
    let resp = inner.meta.call(Body::GetChunks(pb::GetChunks { ino, from_index, limit })).await?;
    let Some(RBody::Chunks(list)) = resp.body else {
        return Err(unexpected());
    };
    Ok((list.attr.ok_or_else(unexpected)?, list.chunks, list.more))
}

/// Whether two attribute reads describe the same contents (a commit or a
/// truncate changes size or mtime/ctime, and the manifest's sequence).
fn same_version(a: &pb::Attr, b: &pb::Attr) -> bool {
    a.size == b.size
        && a.mtime_ns == b.mtime_ns
        && a.ctime_ns == b.ctime_ns
        && a.manifest.as_ref().map(|m| m.seq) == b.manifest.as_ref().map(|m| m.seq)
}
