//! File reader: chunks fetched several at a time, in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use shardline_proto::v1 as pb;

use crate::chunk_read::read_chunk;
use crate::client::{FileCtx, Inner};
use crate::ClientError;

/// A snapshot of one file's layout and chunk versions, ready to read.
#[derive(Clone)]
pub struct FileReader {
    inner: Arc<Inner>,
    ctx: Arc<FileCtx>,
    size: u64,
    chunks: Arc<BTreeMap<u64, pb::Chunk>>,
}

impl FileReader {
    pub(crate) fn new(inner: Arc<Inner>, ctx: Arc<FileCtx>, size: u64, chunks: Vec<pb::Chunk>) -> Self {
        FileReader { inner, ctx, size, chunks: Arc::new(chunks.into_iter().map(|c| (c.index, c)).collect()) }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn ino(&self) -> u64 {
        self.ctx.ino
    }

    /// Number of chunks the file spans.
    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.ctx.chunk_size as u64)
    }

    /// The plaintext of chunk `index`, cut to the file's size; a chunk never
    /// written (a hole) reads as zeros.
    pub async fn read_chunk(&self, index: u64) -> Result<Bytes, ClientError> {
        let cs = self.ctx.chunk_size as u64;
        let start = index * cs;
        if start >= self.size {
            return Ok(Bytes::new());
        }
        let want = (self.size - start).min(cs) as usize;
        let Some(chunk) = self.chunks.get(&index) else {
            return Ok(Bytes::from(vec![0u8; want]));
        };
        let mut plain = read_chunk(&self.inner, &self.ctx, chunk).await?;
        if plain.len() > want {
            plain.truncate(want);
        } else if plain.len() < want {
            // The chunk was written shorter than the file extends: the rest is a hole.
            let mut b = BytesMut::from(&plain[..]);
            b.resize(want, 0);
            plain = b.freeze();
        }
        Ok(plain)
    }

    /// Call `f` with each chunk's plaintext in order, reading up to
    /// `parallel` chunks ahead.
    pub async fn for_each_chunk<F>(&self, parallel: usize, mut f: F) -> Result<(), ClientError>
    where
        F: FnMut(u64, Bytes) -> Result<(), ClientError>,
    {
        let mut chunks = stream::iter(0..self.chunk_count()).map(|i| self.read_chunk(i)).buffered(parallel.max(1));
        let mut i = 0;
        while let Some(chunk) = chunks.next().await {
            f(i, chunk?)?;
            i += 1;
        }
        Ok(())
    }

    /// `len` bytes from `offset` (fewer at the end of the file).
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, ClientError> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = offset.saturating_add(len as u64).min(self.size);
        let cs = self.ctx.chunk_size as u64;
        let mut out = Vec::new();
        for index in offset / cs..end.div_ceil(cs) {
            let chunk = self.read_chunk(index).await?;
            out.try_reserve(chunk.len()).map_err(|_| ClientError::TooLarge { size: self.size })?;
            let cstart = index * cs;
            let from = offset.saturating_sub(cstart) as usize;
            let to = ((end - cstart) as usize).min(chunk.len());
            out.extend_from_slice(&chunk[from..to]);
        }
        Ok(Bytes::from(out))
    }

    /// The whole file. Memory for it is asked for up front and a refusal is
    /// a clear error: the size comes from the metadata service and a sparse
    /// file can claim far more than fits, which must not abort the process.
    pub async fn read_all(&self) -> Result<Vec<u8>, ClientError> {
        let size = self.size;
        let mut out = Vec::new();
        let want = usize::try_from(size).map_err(|_| ClientError::TooLarge { size })?;
        out.try_reserve_exact(want).map_err(|_| ClientError::TooLarge { size })?;
        self.for_each_chunk(self.inner.cfg.read_parallelism, |_, b| {
            out.extend_from_slice(&b);
            Ok(())
        })
        .await?;
        Ok(out)
    }
}
