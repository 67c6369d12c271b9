//! Sequential file writer: gathers bytes into whole chunks and keeps several
//! chunks in flight (sealing, coding and sending overlap).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use shardline_proto::v1 as pb;
use tokio::task::JoinSet;

use crate::chunk_write::write_chunk;
use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::ClientError;

/// Where the file goes when the writer finishes (atomic replace).
pub(crate) struct RenameOnFinish {
    pub parent: u64,
    pub tmp_name: Vec<u8>,
    pub name: Vec<u8>,
}

/// Writes a new file from start to end. Nothing is visible under the final
/// path until [`FileWriter::finish`] succeeds.
pub struct FileWriter {
    inner: Arc<Inner>,
    ctx: Arc<FileCtx>,
    buf: BytesMut,
    next_index: u64,
    inflight: JoinSet<Result<(), ClientError>>,
    max_inflight: usize,
    rename: Option<RenameOnFinish>,
    failed: bool,
}

impl FileWriter {
    pub(crate) fn new(inner: Arc<Inner>, ctx: Arc<FileCtx>, rename: Option<RenameOnFinish>) -> Self {
        let max_inflight = inner.cfg.write_parallelism.max(1);
        let chunk = ctx.chunk_size;
        FileWriter {
            inner,
            ctx,
            buf: BytesMut::with_capacity(chunk),
            next_index: 0,
            inflight: JoinSet::new(),
            max_inflight,
            rename,
            failed: false,
        }
    }

    /// The file's inode number.
    pub fn ino(&self) -> u64 {
        self.ctx.ino
    }

    /// Append `data`.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), ClientError> {
        let chunk = self.ctx.chunk_size;
        while !data.is_empty() {
            let take = (chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == chunk {
                let full = self.buf.split().freeze();
                self.buf.reserve(chunk);
                self.submit(full).await?;
            }
        }
        Ok(())
    }

    async fn submit(&mut self, bytes: Bytes) -> Result<(), ClientError> {
        while self.inflight.len() >= self.max_inflight {
            self.reap_one().await?;
        }
        let index = self.next_index;
        self.next_index += 1;
        let new_size = index * self.ctx.chunk_size as u64 + bytes.len() as u64;
        let (inner, ctx) = (self.inner.clone(), self.ctx.clone());
        self.inflight.spawn(async move { write_chunk(&inner, &ctx, index, bytes, new_size).await });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<(), ClientError> {
        match self.inflight.join_next().await {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => {
                self.failed = true;
                Err(e)
            }
            Some(Err(e)) => {
                self.failed = true;
                Err(ClientError::Internal(format!("chunk task: {e}")))
            }
        }
    }

    /// Flush the last partial chunk, wait for every chunk to commit, and
    /// move the file into place. Returns the file's size.
    pub async fn finish(mut self) -> Result<u64, ClientError> {
        if !self.buf.is_empty() {
            let last = self.buf.split().freeze();
            self.submit(last).await?;
        }
        while !self.inflight.is_empty() {
            self.reap_one().await?;
        }
        let size = self.next_index.saturating_sub(1) * self.ctx.chunk_size as u64;
        let _ = size;
        if let Some(r) = self.rename.take() {
            let resp = self
                .inner
                .meta
                .call(pb::meta_request::Body::Rename(pb::Rename {
                    parent: r.parent,
                    name: r.tmp_name,
                    new_parent: r.parent,
                    new_name: r.name,
                }))
                .await?;
            if let Some(pb::meta_response::Body::Released(rel)) = resp.body {
                self.inner.release(rel);
            }
        }
        let attr = self.inner.getattr(self.ctx.ino).await?;
        Ok(attr.size)
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // An abandoned or failed writer leaves its temporary file behind only
        // if we cannot reach the metadata service; try to remove it.
        if let Some(r) = self.rename.take() {
            let inner = self.inner.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = inner.unlink_at(r.parent, &r.tmp_name).await;
                });
            }
        }
        let _ = self.failed;
    }
}
