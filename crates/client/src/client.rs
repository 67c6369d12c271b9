//! The client handle and namespace operations by path.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use shardline_crypto::{ChunkFormat, CipherSuite, Dek, WrapFormat};
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{MetaClient, Pool, Role, Tls};
use shardline_types::{ShardKey, ROOT_INO};

use crate::file_ctx::FileCtx;
use crate::paths::{components, split_parent};
use crate::placement::PlacementView;
use crate::reader::FileReader;
use crate::writer::{FileWriter, RenameOnFinish};
use crate::ClientError;
use shardline_rpc::shard_client as shard_io;

/// How to reach a cluster and how hard to push it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Every metadata server's address.
    pub meta_addrs: Vec<String>,
    /// The key-encryption key file (never sent anywhere).
    pub key_file: PathBuf,
    /// This client's TLS identity (a `client` or `admin` certificate of
    /// the cluster CA) for every connection.
    pub tls: Arc<Tls>,
    /// Offer data servers the integrity-only transport (shards travel
    /// authenticated but not encrypted a second time; they are sealed end
    /// to end already). Servers that do not accept it stay fully encrypted.
    pub data_integrity_only: bool,
    /// Chunks written concurrently by one writer.
    pub write_parallelism: usize,
    /// Chunks read ahead by one reader.
    pub read_parallelism: usize,
    /// How long a metadata request keeps retrying through leader changes.
    pub meta_deadline: Duration,
    /// Per shard request timeout.
    pub shard_timeout: Duration,
    /// How long a chunk write keeps retrying while the placement map moves
    /// away from a failed server.
    pub write_retry_window: Duration,
    /// Chunks asked for per page of a file's chunk list (the metadata
    /// service caps a page at 50,000).
    pub chunk_list_page: u32,
    /// The cipher suite of files this client creates; `None`: AES-256-GCM
    /// on CPUs with AES instructions, else XChaCha20-Poly1305. Existing
    /// files keep theirs.
    pub cipher_suite: Option<CipherSuite>,
    /// The format chunks are written in. [`ChunkFormat::V2`] (segments,
    /// range reads); [`ChunkFormat::V1`] exists to test that files written
    /// by older clients still read, and applies to XChaCha20-Poly1305 files
    /// only.
    pub chunk_format: ChunkFormat,
    /// How the keys of new files are wrapped. [`WrapFormat::V2`] (the
    /// default): the file must have an authenticated manifest, so its chunk
    /// list and size cannot be rolled back, cut or dropped by whoever
    /// writes metadata. [`WrapFormat::V1`] exists to test that files made
    /// by older clients (no manifest) still read and write.
    pub wrap_format: WrapFormat,
    /// Take the keyring from this command's output instead of `key_file`
    /// (a KMS helper; `shardline_crypto::KeyCommandProvider`). It is run
    /// again when a file names a key version the keyring held lacks.
    pub key_command: Option<Vec<String>>,
    /// How long `key_command` may run before it is killed and the load
    /// fails (None: `shardline_crypto::DEFAULT_KEY_COMMAND_TIMEOUT`, 30 s).
    pub key_command_timeout: Option<Duration>,
    /// The user metadata requests act for (`shardline_rpc::acting`); None:
    /// this process's effective uid, gid and groups. A client certificate
    /// with a uid mapping acts as its mapping whatever this says.
    pub acting: Option<shardline_rpc::acting::Caller>,
    /// Serve lookups and stats from the coherent metadata cache while the
    /// leader grants it (docs/metadata-cache.md); on by default.
    pub metadata_cache: bool,
    /// A file whose size is at most this many bytes when its first chunk is
    /// written has that chunk stored as m+1 whole copies on the first m+1
    /// targets of its group instead of k+m cells: a cold read of it is one
    /// shard get instead of k, for (m+1)·k/(k+m) times the raw space (2×
    /// under 4+2); it survives the same m lost servers. 0: never.
    /// Default [`DEFAULT_SMALL_FILE_MAX`].
    pub small_file_max: u64,
}

/// Files of at most 128 KiB are stored as copies by default
/// ([`ClientConfig::small_file_max`]).
pub const DEFAULT_SMALL_FILE_MAX: u64 = 128 << 10;

impl ClientConfig {
    pub fn new(meta_addrs: Vec<String>, key_file: PathBuf, tls: Arc<Tls>) -> Self {
        ClientConfig {
            meta_addrs,
            key_file,
            tls,
            data_integrity_only: false,
            write_parallelism: 4,
            read_parallelism: 6,
            meta_deadline: Duration::from_secs(15),
            shard_timeout: Duration::from_secs(10),
            write_retry_window: Duration::from_secs(20),
            chunk_list_page: 50_000,
            cipher_suite: None,
            chunk_format: ChunkFormat::V2,
            wrap_format: WrapFormat::V2,
            key_command: None,
            key_command_timeout: None,
            acting: None,
            metadata_cache: true,
            small_file_max: DEFAULT_SMALL_FILE_MAX,
        }
    }
}

pub(crate) struct Inner {
    pub cfg: ClientConfig,
    pub meta: MetaClient,
    pub pool: Arc<Pool>,
    /// The keyring of the key file, reloaded when the file changes.
    pub keys: crate::keys::ClientKeys,
    placement: RwLock<Arc<PlacementView>>,
    /// Directory attributes seen last (kept by the inode API).
    pub dirs: crate::dir_cache::DirAttrCache,
    /// Shard capabilities granted beyond those chunk lists carry.
    pub caps: crate::caps::CapCache,
    /// Recent shard fetch latencies: when to hedge a slow one.
    pub latencies: crate::hedge::Latencies,
    /// Shard fetches sent as hedges (another shard asked for bytes a slow
    /// one had not sent yet).
    pub hedged: std::sync::atomic::AtomicU64,
    /// The coherent metadata cache and where a mount hooks its recalls.
    pub mcache: crate::meta_cache::MetaCache,
    pub recall_hook: crate::meta_cache_watch::HookSlot,
    /// Lookups that missed per directory, for listing ahead.
    pub(crate) statahead: crate::statahead::Statahead,
}

impl Inner {
    pub fn placement(&self) -> Arc<PlacementView> {
        self.placement.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub async fn refresh_placement(&self) -> Result<Arc<PlacementView>, ClientError> {
        let resp = self.meta.call(Body::GetPlacement(pb::GetPlacement {})).await?;
        let Some(RBody::Placement(map)) = resp.body else {
            return Err(unexpected());
        };
        let view = Arc::new(PlacementView::from_wire(&map));
        *self.placement.write().unwrap_or_else(|e| e.into_inner()) = view.clone();
        Ok(view)
    }

    /// A fresh random data key for a new file, its KEK-wrapped form for
    /// the metadata service and, for wrap format 2, the file's first
    /// manifest (sequence 0).
    pub(crate) fn new_file_key(&self) -> (Dek, pb::WrappedKey, Option<pb::FileManifest>) {
        let dek = Dek::generate();
        let suite = self.cfg.cipher_suite.unwrap_or_else(CipherSuite::preferred);
        let ring = self.keys.ring();
        let format = self.cfg.wrap_format;
        let (kek_version, wrapped) = ring.wrap(&dek, format);
        let key = pb::WrappedKey {
            kek_id: ring.id().to_string(),
            kek_version,
            suite: i32::from(suite.id()),
            wrapped,
            format: format.to_wire(),
        };
        let manifest = format.manifest_required().then(|| crate::manifest::initial(&dek));
        (dek, key, manifest)
    }

    pub async fn getattr(&self, ino: u64) -> Result<pb::Attr, ClientError> {
        attr_of(self.meta.call(Body::Getattr(pb::GetAttr { ino })).await?)
    }

    pub async fn unlink_at(&self, parent: u64, name: &[u8]) -> Result<(), ClientError> {
        let resp = self.meta.call(Body::Unlink(pb::Unlink { parent, name: name.to_vec() })).await?;
        if let Some(RBody::Released(r)) = resp.body {
            self.release(r);
        }
        Ok(())
    }

    /// Delete the shards of chunks no file refers to any more, in the
    /// background, over the client's own connections. Best effort: scrub and GC collect whatever this misses.
    pub fn release(self: &Inner, released: pb::Released) {
        if released.chunks.is_empty() {
            return;
        }
        let view = self.placement();
        let width = self.placement().groups_width_hint();
        // Each released chunk carries its delete capability.
        let pool_calls: Vec<(String, ShardKey, Option<pb::ShardCap>)> = released
            .chunks
            .iter()
            .flat_map(|c| {
                let targets = view.targets(c.pg, width).unwrap_or_default();
                targets.into_iter().enumerate().map(move |(i, addr)| {
                    (
                        addr,
                        ShardKey {
                            file_id: released.file_id,
                            chunk_index: c.index,
                            version: c.version,
                            shard_index: i as u32,
                        },
                        c.cap.clone(),
                    )
                })
            })
            .collect();
        let pool = self.pool.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for (addr, key, cap) in pool_calls {
                    let _ = shard_io::delete(&pool, &addr, &key, cap.as_ref()).await;
                }
            });
        }
    }
}

pub(crate) fn unexpected() -> ClientError {
    ClientError::Internal("unexpected response from the metadata service".into())
}

pub(crate) fn attr_of(resp: pb::MetaResponse) -> Result<pb::Attr, ClientError> {
    match resp.body {
        Some(RBody::Attr(a)) => Ok(a),
        _ => Err(unexpected()),
    }
}

/// Kind of a namespace entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    /// Special files: no data (the mount leaves their I/O to the kernel).
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    pub(crate) fn from_wire(k: i32) -> Self {
        match pb::FileKind::try_from(k) {
            Ok(pb::FileKind::Directory) => FileKind::Directory,
            Ok(pb::FileKind::Symlink) => FileKind::Symlink,
            Ok(pb::FileKind::Fifo) => FileKind::Fifo,
            Ok(pb::FileKind::Socket) => FileKind::Socket,
            Ok(pb::FileKind::CharDevice) => FileKind::CharDevice,
            Ok(pb::FileKind::BlockDevice) => FileKind::BlockDevice,
            _ => FileKind::File,
        }
    }
}

/// A file's attributes.
#[derive(Debug, Clone)]
pub struct FileStat {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    pub nlink: u32,
    pub mtime_ns: i64,
    /// "K+M".
    pub ec: String,
    pub chunk_size: u32,
    pub encrypted: bool,
}

impl FileStat {
    pub(crate) fn from_wire(a: &pb::Attr) -> Self {
        let l = a.layout.unwrap_or_default();
        FileStat {
            ino: a.ino,
            kind: FileKind::from_wire(a.kind),
            size: a.size,
            mode: a.mode,
            nlink: a.nlink,
            mtime_ns: a.mtime_ns,
            ec: format!("{}+{}", l.data_shards, l.parity_shards),
            chunk_size: l.chunk_size,
            encrypted: a.key.is_some(),
        }
    }
}

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The name's bytes: any but `/` and NUL, not necessarily UTF-8.
    pub name: Vec<u8>,
    pub ino: u64,
    pub kind: FileKind,
    /// The entry's attributes, if the listing asked for them.
    pub attr: Option<crate::inode_api::InodeAttr>,
}

impl DirEntry {
    /// The name as a path component (no UTF-8 needed).
    pub fn file_name(&self) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(&self.name)
    }
}

/// A connection to a Shardline cluster. Cheap to clone.
///
/// Paths are absolute (`/a/b`) and taken as anything that is a [`Path`]
/// (`&str`, `String`, `PathBuf`, `OsStr`...): their components are bytes, so
/// names need not be UTF-8 (see [`crate::paths`]).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Times [`Client::read_file`] reopens a file replaced while it was read.
const MAX_REOPENS: usize = 8;

impl Client {
    /// Load the key and fetch the placement map.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        let keys = crate::keys::ClientKeys::load(&cfg.key_file, cfg.key_command.as_deref(), cfg.key_command_timeout)?;
        let inner = Arc::new(Inner {
            meta: {
                let mut meta = MetaClient::new(cfg.meta_addrs.clone(), cfg.meta_deadline, cfg.tls.clone());
                if let Some(who) = &cfg.acting {
                    meta.set_acting(who.clone());
                }
                meta
            },
            pool: Arc::new(
                Pool::new(cfg.tls.clone(), Role::Data, Duration::from_secs(2), cfg.shard_timeout)
                    .integrity_only(cfg.data_integrity_only),
            ),
            keys,
            placement: RwLock::new(Arc::new(PlacementView::default())),
            dirs: Default::default(),
            caps: Default::default(),
            latencies: Default::default(),
            hedged: Default::default(),
            mcache: if cfg.metadata_cache { Default::default() } else { crate::meta_cache::MetaCache::disabled() },
            recall_hook: Default::default(),
            statahead: Default::default(),
            cfg,
        });
        inner.refresh_placement().await?;
        if inner.cfg.metadata_cache {
            tokio::spawn(crate::meta_cache_watch::run(Arc::downgrade(&inner)));
        }
        Ok(Client { inner })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Connections dialed and requests sent to data servers so far.
    pub fn shard_connection_stats(&self) -> shardline_rpc::PoolStats {
        self.inner.pool.stats()
    }

    /// Lookups and stats the metadata cache answered, and those it did not.
    pub fn metadata_cache_stats(&self) -> (u64, u64) {
        self.inner.mcache.stats()
    }

    /// How many metadata cache sessions this client has opened: 1 while
    /// its first lives (a lost session drops the whole cache).
    pub fn metadata_cache_sessions(&self) -> u64 {
        self.inner.mcache.sessions_opened()
    }

    /// Wait until this client's metadata cache session is open (it opens
    /// in the background after connecting); false after `timeout`, or at
    /// once when caching is off.
    pub async fn wait_metadata_cache(&self, timeout: Duration) -> bool {
        self.inner.mcache.wait_open(timeout).await
    }

    /// Have `hook` told of every recall before it is acknowledged (a mount
    /// drops the kernel's copies; see [`crate::meta_cache_watch`]).
    pub fn set_recall_hook(&self, hook: crate::meta_cache_watch::RecallHook) {
        self.inner.recall_hook.set(hook);
    }

    /// Shard fetches this client sent as hedges: another shard asked for
    /// bytes a slow one had not sent within the hedging threshold.
    pub fn hedged_fetches(&self) -> u64 {
        self.inner.hedged.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn refresh_placement(&self) -> Result<u64, ClientError> {
        Ok(self.inner.refresh_placement().await?.epoch)
    }

    async fn resolve_parts(&self, parts: &[&[u8]]) -> Result<pb::Attr, ClientError> {
        let mut attr = self.inner.getattr(ROOT_INO).await?;
        for name in parts {
            attr = attr_of(
                self.inner.meta.call(Body::Lookup(pb::Lookup { parent: attr.ino, name: name.to_vec() })).await?,
            )?;
        }
        Ok(attr)
    }

    async fn parent_dir(&self, parts: &[&[u8]]) -> Result<u64, ClientError> {
        let attr = self.resolve_parts(parts).await?;
        if FileKind::from_wire(attr.kind) != FileKind::Directory {
            return Err(ClientError::NotADirectory);
        }
        Ok(attr.ino)
    }

    pub async fn stat(&self, path: impl AsRef<Path>) -> Result<FileStat, ClientError> {
        Ok(FileStat::from_wire(&self.resolve_parts(&components(path.as_ref())?).await?))
    }

    pub async fn mkdir(&self, path: impl AsRef<Path>) -> Result<FileStat, ClientError> {
        let (parent, name) = split_parent(path.as_ref())?;
        let parent = self.parent_dir(&parent).await?;
        let resp = self
            .inner
            .meta
            .call(Body::Mkdir(pb::Mkdir { parent, name: name.to_vec(), mode: 0o755, ..Default::default() }))
            .await?;
        Ok(FileStat::from_wire(&attr_of(resp)?))
    }

    /// Every entry of a directory, in name order.
    pub async fn list(&self, path: impl AsRef<Path>) -> Result<Vec<DirEntry>, ClientError> {
        let dir = self.resolve_parts(&components(path.as_ref())?).await?;
        if FileKind::from_wire(dir.kind) != FileKind::Directory {
            return Err(ClientError::NotADirectory);
        }
        let mut out = Vec::new();
        let mut after = Vec::new();
        loop {
            let resp = self
                .inner
                .meta
                .call(Body::Readdir(pb::ReadDir { ino: dir.ino, after: after.clone(), limit: 1000, with_attrs: false }))
                .await?;
            let Some(RBody::Entries(page)) = resp.body else {
                return Err(unexpected());
            };
            for e in page.entries {
                after = e.name.clone();
                out.push(DirEntry { name: e.name, ino: e.ino, kind: FileKind::from_wire(e.kind), attr: None });
            }
            if !page.more {
                return Ok(out);
            }
        }
    }

    /// Remove a file or an empty directory.
    pub async fn remove(&self, path: impl AsRef<Path>) -> Result<(), ClientError> {
        let (parent_parts, name) = split_parent(path.as_ref())?;
        let parent = self.parent_dir(&parent_parts).await?;
        let target = attr_of(self.inner.meta.call(Body::Lookup(pb::Lookup { parent, name: name.to_vec() })).await?)?;
        if FileKind::from_wire(target.kind) == FileKind::Directory {
            self.inner.meta.call(Body::Rmdir(pb::Rmdir { parent, name: name.to_vec() })).await?;
            return Ok(());
        }
        self.inner.unlink_at(parent, name).await
    }

    /// Atomically rename `from` to `to` (replacing a file there).
    pub async fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<(), ClientError> {
        let (fp, fname) = split_parent(from.as_ref())?;
        let (tp, tname) = split_parent(to.as_ref())?;
        let parent = self.parent_dir(&fp).await?;
        let new_parent = self.parent_dir(&tp).await?;
        let resp = self
            .inner
            .meta
            .call(Body::Rename(pb::Rename { parent, name: fname.to_vec(), new_parent, new_name: tname.to_vec() }))
            .await?;
        if let Some(RBody::Released(r)) = resp.body {
            self.inner.release(r);
        }
        Ok(())
    }

    /// Start writing a file at `path`. The data goes to a hidden temporary
    /// file that replaces `path` atomically when the writer finishes, so a
    /// failed write never leaves a half-written file under that name.
    pub async fn create(&self, path: impl AsRef<Path>) -> Result<FileWriter, ClientError> {
        let (parent_parts, name) = split_parent(path.as_ref())?;
        if name.len() > 200 {
            return Err(ClientError::Meta(shardline_rpc::MetaCallError::Service {
                code: shardline_types::ErrorCode::NameTooLong,
                message: "file name too long".into(),
            }));
        }
        let parent = self.parent_dir(&parent_parts).await?;
        let mut tmp_name = Vec::with_capacity(name.len() + 32);
        tmp_name.push(b'.');
        tmp_name.extend_from_slice(name);
        tmp_name.extend_from_slice(format!(".shardline-{:016x}.tmp", rand::random::<u64>()).as_bytes());
        let (dek, key, manifest) = self.inner.new_file_key();
        // The answer carries the put token for chunk 0's first version.
        let first_version = crate::chunk_write::new_version();
        let mut resp = self
            .inner
            .meta
            .call(Body::Create(pb::Create {
                parent,
                name: tmp_name.clone(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                key: Some(key),
                exclusive: true,
                manifest,
                first_version,
            }))
            .await?;
        let first_put = resp.first_put.take();
        let attr = attr_of(resp)?;
        let ctx = FileCtx::open(&self.inner, &attr, &[], Some(dek))?;
        if let Some(cap) = first_put {
            ctx.offer_first_put(first_version, cap);
        }
        let rename = RenameOnFinish { parent, tmp_name, name: name.to_vec() };
        Ok(FileWriter::new(self.inner.clone(), Arc::new(ctx), Some(rename)))
    }

    /// Write a whole buffer as the file at `path`.
    pub async fn write_file(&self, path: impl AsRef<Path>, data: &[u8]) -> Result<u64, ClientError> {
        let mut w = self.create(path).await?;
        w.write(data).await?;
        w.finish().await
    }

    /// Open a file for reading (a snapshot of its committed chunks).
    ///
    /// The path is looked up, then its inode's chunks fetched: a file
    /// renamed over the path in between frees the inode found, so the path
    /// is looked up again (it names the new file) rather than reported
    /// missing.
    pub async fn open(&self, path: impl AsRef<Path>) -> Result<FileReader, ClientError> {
        let parts = components(path.as_ref())?;
        let mut attempts = 0;
        // The attributes the chunk list came with: the manifest covers both.
        let (attr, chunks) = loop {
            let attr = self.resolve_parts(&parts).await?;
            if FileKind::from_wire(attr.kind) != FileKind::File {
                return Err(ClientError::NotAFile);
            }
            match crate::chunk_list::get_chunks(&self.inner, attr.ino).await {
                Err(ClientError::Meta(shardline_rpc::MetaCallError::Service {
                    code: shardline_types::ErrorCode::NotFound,
                    ..
                })) if attempts < 8 => attempts += 1,
                other => break other?,
            }
        };
        let ctx = FileCtx::open(&self.inner, &attr, &chunks, None)?;
        Ok(FileReader::new(self.inner.clone(), Arc::new(ctx), attr.size, chunks))
    }

    /// Read a whole file: all of one version of it. A file replaced while
    /// it is read (its old chunks released: [`ClientError::Stale`]) is
    /// opened again by path and the new one read.
    pub async fn read_file(&self, path: impl AsRef<Path>) -> Result<Vec<u8>, ClientError> {
        let mut reopened = 0;
        loop {
            match self.open(path.as_ref()).await?.read_all().await {
                Err(ClientError::Stale { .. }) if reopened < MAX_REOPENS => reopened += 1,
                other => return other,
            }
        }
    }
}
