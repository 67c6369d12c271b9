//! File reader: whole chunks fetched several at a time, in order, for
//! streaming ([`FileReader::for_each_chunk`], decrypted on the blocking
//! pool); ranges read on their own, only the segments they need, decrypted
//! straight into a caller's buffer ([`FileReader::read_into`]) or into one
//! of their own ([`FileReader::read_at`], which fills a fresh buffer
//! through `read_into`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt, TryStreamExt};
use shardline_crypto::{ChunkFormat, CipherSuite};
use shardline_proto::v1 as pb;

use crate::chunk_read::read_chunk;
use crate::client::Inner;
use crate::file_ctx::FileCtx;
use crate::range_read::read_chunk_range_into;
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

    /// `len` bytes from `offset` (fewer at the end of the file): a buffer
    /// of that size filled by [`read_into`](Self::read_into). Memory for it
    /// is asked for up front and a refusal is a clear error.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, ClientError> {
        let n = self.size.saturating_sub(offset).min(len as u64);
        let n = usize::try_from(n).map_err(|_| ClientError::TooLarge { size: n })?;
        let mut out = Vec::new();
        out.try_reserve_exact(n).map_err(|_| ClientError::TooLarge { size: n as u64 })?;
        out.resize(n, 0);
        let got = self.read_into(offset, &mut out).await?;
        out.truncate(got);
        Ok(Bytes::from(out))
    }

    /// Fill `buf` with the file's bytes from `offset`; returns how many were
    /// written: all of `buf`, fewer at the end of the file, 0 past it.
    ///
    /// The plaintext is decrypted straight into `buf`: each segment's
    /// ciphertext is copied into its place there and opened in place
    /// (`range_read.rs`). Chunks the range covers whole are fetched whole;
    /// a part of a chunk fetches only the segments holding it (a 128 KiB
    /// sample moves about 192 KiB, not the chunk). Up to `read_parallelism`
    /// chunks are fetched at once, and each is decrypted, as it arrives, on
    /// the thread polling this future (the buffer is borrowed, so it cannot
    /// go to the blocking pool; on a multi-threaded runtime, large chunks
    /// under `block_in_place`).
    ///
    /// Bytes pass through a scratch buffer only where they must: a 64 KiB
    /// segment only partly inside the range (at most the first and last of
    /// each chunk read in part), a degraded read's decoded ciphertext, a
    /// chunk in format v1 (opened whole, then copied), and a chunk whose
    /// shards fail authentication (read whole from another set of k, then
    /// copied). Holes read as zeros.
    pub async fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ClientError> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        // At most `buf.len()` bytes, so it fits in a usize.
        let n = (self.size - offset).min(buf.len() as u64) as usize;
        let cs = self.ctx.chunk_size as u64;
        // `buf` cut at chunk boundaries (a loop, not iterator closures:
        // those trip rustc's higher-ranked lifetime check on `Send` futures).
        let mut reads = Vec::new();
        let (mut at, mut rest) = (offset, &mut buf[..n]);
        while !rest.is_empty() {
            let (index, from) = (at / cs, (at % cs) as usize);
            let len = (cs as usize - from).min(rest.len());
            let (out, tail) = std::mem::take(&mut rest).split_at_mut(len);
            at += out.len() as u64;
            reads.push(self.read_part_into(index, from, out));
            rest = tail;
        }
        stream::iter(reads).buffer_unordered(self.inner.cfg.read_parallelism.max(1)).try_collect::<()>().await?;
        Ok(n)
    }

    /// Bytes `from..from + out.len()` of chunk `index` (within the file's
    /// size) into `out`.
    async fn read_part_into(&self, index: u64, from: usize, out: &mut [u8]) -> Result<(), ClientError> {
        let got = match self.chunks.get(&index) {
            Some(chunk) => read_chunk_range_into(&self.inner, &self.ctx, chunk, from, out).await?,
            None => 0,
        };
        // A hole, or a chunk written shorter than the file extends: zeros.
        out[got..].fill(0);
        Ok(())
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
