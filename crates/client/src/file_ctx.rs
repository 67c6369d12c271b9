//! What one open file needs to read or write chunks — layout, codec,
//! unwrapped key, cipher suite and the chunk format new versions are
//! written in — checked once here for every façade (path reader/writer,
//! by-inode handles).

use shardline_crypto::{ChunkFormat, CipherSuite, Dek};
use shardline_erasure::Codec;
use shardline_proto::v1 as pb;

use crate::client::Inner;
use crate::ClientError;

/// What one open file needs to read or write chunks.
pub(crate) struct FileCtx {
    pub ino: u64,
    pub chunk_size: usize,
    pub codec: Codec,
    pub dek: Dek,
    pub key_id: String,
    /// The file's cipher suite (from its wrapped key).
    pub suite: CipherSuite,
    /// The format new chunk versions are sealed in.
    pub write_format: ChunkFormat,
}

impl FileCtx {
    /// The context of the file `attr` describes. `dek`: the file's key when
    /// the caller just made it; otherwise it is unwrapped from `attr`.
    pub fn new(inner: &Inner, attr: &pb::Attr, dek: Option<Dek>) -> Result<FileCtx, ClientError> {
        let corrupt = |detail: String| ClientError::Corrupt { file_id: attr.ino, detail };
        let wrapped = attr.key.as_ref().ok_or_else(|| corrupt("file has no data key".into()))?;
        let mut ring = inner.keys.ring();
        if !ring.holds(wrapped.kek_version) {
            ring = inner.keys.reload();
        }
        if wrapped.kek_id != ring.id() {
            return Err(corrupt(format!(
                "file key is wrapped by key {:?}, this client holds {:?}",
                wrapped.kek_id,
                ring.id()
            )));
        }
        let suite = CipherSuite::from_id(wrapped.suite).map_err(|e| corrupt(e.to_string()))?;
        let l = attr.layout.ok_or_else(|| corrupt("file has no layout".into()))?;
        if l.chunk_size == 0 {
            return Err(corrupt("zero chunk size".into()));
        }
        let dek = match dek {
            Some(d) => d,
            // Under the KEK version that wrapped it (stored beside it).
            None => ring.unwrap(&wrapped.kek_id, wrapped.kek_version, &wrapped.wrapped)?,
        };
        // Format v1 has no AES-GCM: such a file is always written in v2.
        let write_format =
            if suite == CipherSuite::XChaCha20Poly1305 { inner.cfg.chunk_format } else { ChunkFormat::V2 };
        Ok(FileCtx {
            ino: attr.ino,
            chunk_size: l.chunk_size as usize,
            codec: Codec::new(l.data_shards as usize, l.parity_shards as usize)?,
            dek,
            key_id: ring.id().to_string(),
            suite,
            write_format,
        })
    }
}
