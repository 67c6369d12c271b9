//! File reader: whole chunks fetched several at a time, in order, for
//! streaming ([`FileReader::for_each_chunk`]); ranges read on their own,
//! only the segments they need ([`FileReader::read_at`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::try_join_all;
use futures::stream::{self, StreamExt};
use shardline_crypto::{ChunkFormat, CipherSuite};
use shardline_proto::v1 as pb;

use crate::chunk_read::read_chunk;
use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::range_read::read_chunk_range;
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

    /// The file's cipher suite.
    pub fn cipher_suite(&self) -> CipherSuite {
        self.ctx.suite
    }

    /// The format chunk `index` was written in (`None`: a hole, or a chunk
    /// format this client does not know).
    pub fn chunk_format(&self, index: u64) -> Option<ChunkFormat> {
        self.chunks.get(&index).and_then(|c| ChunkFormat::from_wire(c.format).ok())
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

    /// `len` bytes from `offset` (fewer at the end of the file). Chunks the
    /// range covers whole are read whole; a part of a chunk is read on its
    /// own, fetching and decrypting only the segments that hold it (a 128 KiB
    /// sample moves about 192 KiB, not the chunk). The chunks of a range
    /// spanning several are read concurrently.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, ClientError> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = offset.saturating_add(len as u64).min(self.size);
        let cs = self.ctx.chunk_size as u64;
        let part = |index: u64| {
            let cstart = index * cs;
            let from = offset.saturating_sub(cstart) as usize;
            let to = ((end - cstart) as usize).min(cs as usize);
            self.read_part(index, from..to)
        };
        let (first, last) = (offset / cs, (end - 1) / cs);
        if first == last {
            return part(first).await;
        }
        let parts = try_join_all((first..=last).map(part)).await?;
        let mut out = Vec::new();
        out.try_reserve_exact((end - offset) as usize).map_err(|_| ClientError::TooLarge { size: self.size })?;
        for p in parts {
            out.extend_from_slice(&p);
        }
        Ok(Bytes::from(out))
    }

    /// Bytes `want` of chunk `index` (within the file's size).
    async fn read_part(&self, index: u64, want: Range<usize>) -> Result<Bytes, ClientError> {
        let cs = self.ctx.chunk_size as u64;
        let extent = (self.size - index * cs).min(cs) as usize;
        if want.start == 0 && want.end >= extent {
            return self.read_chunk(index).await;
        }
        let wanted = want.len();
        let Some(chunk) = self.chunks.get(&index) else {
            return Ok(Bytes::from(vec![0u8; wanted]));
        };
        let got = read_chunk_range(&self.inner, &self.ctx, chunk, want).await?;
        if got.len() == wanted {
            return Ok(got);
        }
        // The chunk was written shorter than the file extends: the rest is a hole.
        let mut v = Vec::with_capacity(wanted);
        v.extend_from_slice(&got);
        v.resize(wanted, 0);
        Ok(Bytes::from(v))
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
