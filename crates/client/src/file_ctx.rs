//! What one open file needs to read or write chunks — layout, codec,
//! unwrapped key, cipher suite, the chunk format new versions are written
//! in, and (wrap format 2) the manifest key and the writer's manifest
//! state — checked once here for every façade (path reader/writer,
//! by-inode handles, the prefetch stream). [`FileCtx::open`] is the only
//! way to make one, and it checks the chunk list against the manifest.

use shardline_crypto::{ChunkFormat, CipherSuite, Dek, ManifestKey, WrapFormat};
use shardline_erasure::Codec;
use shardline_proto::v1 as pb;

use crate::client::Inner;
use crate::manifest::{verify, ManifestState};
use crate::ClientError;

/// What one open file needs to read or write chunks.
pub(crate) struct FileCtx {
    pub ino: u64,
    pub chunk_size: usize,
    /// The file's layout's k+m codec.
    pub codec: Codec,
    /// 1+m: chunks stored as m+1 whole copies (`Chunk.data_shards` 1, a
    /// small file's only chunk).
    pub copies: Codec,
    pub dek: Dek,
    pub key_id: String,
    /// The file's cipher suite (from its wrapped key).
    pub suite: CipherSuite,
    /// The format new chunk versions are sealed in.
    pub write_format: ChunkFormat,
    /// Files whose key has wrap format 2: the key their manifests are MACed with.
    pub manifest_key: Option<ManifestKey>,
    /// The manifest this client last verified or wrote (`None`: read the
    /// file again before the next change). Held across a change, so one
    /// open file's changes go to the metadata service one at a time.
    pub manifest: tokio::sync::Mutex<Option<ManifestState>>,
    /// A file this client just created: the version its chunk 0 is first
    /// written at and the put capability the create's answer carried for
    /// it. Taken by that first write (a later one picks a new version).
    first_put: std::sync::Mutex<Option<(u64, pb::ShardCap)>>,
}

impl FileCtx {
    /// The context of the file `attr` describes, whose whole chunk list is
    /// `chunks` (as the metadata service returned them with `attr`): both
    /// are checked against the file's manifest when its key requires one
    /// (an integrity error otherwise). `dek`: the file's key when the
    /// caller just made it; otherwise it is unwrapped from `attr`.
    pub fn open(
        inner: &Inner,
        attr: &pb::Attr,
        chunks: &[pb::Chunk],
        dek: Option<Dek>,
    ) -> Result<FileCtx, ClientError> {
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
        // The wrap format is bound into the wrapping: a key presented in
        // another format than it was made in does not unwrap.
        let wrap_format = WrapFormat::from_wire(wrapped.format)?;
        let l = attr.layout.ok_or_else(|| corrupt("file has no layout".into()))?;
        if l.chunk_size == 0 {
            return Err(corrupt("zero chunk size".into()));
        }
        let dek = match dek {
            Some(d) => d,
            // Under the KEK version that wrapped it (stored beside it).
            None => ring.unwrap(&wrapped.kek_id, wrapped.kek_version, &wrapped.wrapped, wrap_format)?,
        };
        let manifest_key = wrap_format.manifest_required().then(|| ManifestKey::derive(&dek));
        let verified = verify(manifest_key.as_ref(), attr, chunks)?;
        // Format v1 has no AES-GCM: such a file is always written in v2.
        let write_format =
            if suite == CipherSuite::XChaCha20Poly1305 { inner.cfg.chunk_format } else { ChunkFormat::V2 };
        Ok(FileCtx {
            ino: attr.ino,
            chunk_size: l.chunk_size as usize,
            codec: Codec::new(l.data_shards as usize, l.parity_shards as usize)?,
            copies: Codec::new(1, l.parity_shards as usize)?,
            dek,
            key_id: ring.id().to_string(),
            suite,
            write_format,
            manifest_key,
            manifest: tokio::sync::Mutex::new(verified),
            first_put: std::sync::Mutex::new(None),
        })
    }

    /// The codec `chunk` was stored with: its own k when it has one (1:
    /// copies), else the file's layout.
    pub fn codec_of(&self, chunk: &pb::Chunk) -> Result<&Codec, ClientError> {
        match chunk.data_shards as usize {
            0 => Ok(&self.codec),
            k if k == self.codec.data_shards() => Ok(&self.codec),
            1 => Ok(&self.copies),
            k => Err(ClientError::Corrupt {
                file_id: self.ino,
                detail: format!(
                    "chunk {} claims {k} data shards under a {}+{} layout",
                    chunk.index,
                    self.codec.data_shards(),
                    self.codec.parity_shards()
                ),
            }),
        }
    }

    /// Offer the first write of chunk 0 a version and its put capability.
    pub fn offer_first_put(&self, version: u64, cap: pb::ShardCap) {
        *self.first_put.lock().unwrap_or_else(|e| e.into_inner()) = Some((version, cap));
    }

    /// The offered version and capability, once.
    pub fn take_first_put(&self) -> Option<(u64, pb::ShardCap)> {
        self.first_put.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Check a fresh read of this file's attributes and chunk list against
    /// its manifest, and keep it as the writer's state.
    pub fn reverify(&self, attr: &pb::Attr, chunks: &[pb::Chunk]) -> Result<(), ClientError> {
        if attr.ino != self.ino {
            return Err(ClientError::Integrity {
                file_id: self.ino,
                detail: format!("answered for file {}", attr.ino),
            });
        }
        crate::manifest::remember(self, verify(self.manifest_key.as_ref(), attr, chunks)?);
        Ok(())
    }
}
