//! Conversions between the namespace's types and wire messages.

use shardline_proto::v1 as pb;
use shardline_rpc::code_to_wire;
use shardline_types::Layout;

use shardline_types::ErrorCode;

use crate::namespace::{ChunkRef, FileKey, Inode, Kind, OpError, Released, SetAttrs, StoredManifest, XattrMode};

pub fn layout_to_wire(l: &Layout) -> pb::Layout {
    pb::Layout { chunk_size: l.chunk_size, data_shards: l.data_shards, parity_shards: l.parity_shards }
}

pub fn kind_to_wire(k: Kind) -> pb::FileKind {
    match k {
        Kind::Regular => pb::FileKind::Regular,
        Kind::Directory => pb::FileKind::Directory,
        Kind::Symlink => pb::FileKind::Symlink,
        Kind::Fifo => pb::FileKind::Fifo,
        Kind::Socket => pb::FileKind::Socket,
        Kind::CharDevice => pb::FileKind::CharDevice,
        Kind::BlockDevice => pb::FileKind::BlockDevice,
    }
}

/// A wire kind; unknown values are InvalidArgument.
pub fn kind_from_wire(k: i32) -> Result<Kind, OpError> {
    match pb::FileKind::try_from(k) {
        Ok(pb::FileKind::Regular) => Ok(Kind::Regular),
        Ok(pb::FileKind::Directory) => Ok(Kind::Directory),
        Ok(pb::FileKind::Symlink) => Ok(Kind::Symlink),
        Ok(pb::FileKind::Fifo) => Ok(Kind::Fifo),
        Ok(pb::FileKind::Socket) => Ok(Kind::Socket),
        Ok(pb::FileKind::CharDevice) => Ok(Kind::CharDevice),
        Ok(pb::FileKind::BlockDevice) => Ok(Kind::BlockDevice),
        Ok(pb::FileKind::Unspecified) | Err(_) => Err(OpError::new(ErrorCode::InvalidArgument, "unknown file kind")),
    }
}

pub fn key_from_wire(k: Option<&pb::WrappedKey>) -> Option<FileKey> {
    k.map(|k| FileKey {
        kek_id: k.kek_id.clone(),
        kek_version: k.kek_version,
        suite: k.suite,
        wrapped: k.wrapped.clone(),
        format: k.format,
    })
}

pub fn manifest_from_wire(m: Option<&pb::FileManifest>) -> Option<StoredManifest> {
    m.map(|m| StoredManifest { format: m.format, seq: m.seq, mac: m.mac.clone() })
}

pub fn manifest_to_wire(m: &StoredManifest) -> pb::FileManifest {
    pb::FileManifest { format: m.format, seq: m.seq, mac: m.mac.clone() }
}

pub fn attr_to_wire(i: &Inode) -> pb::Attr {
    pb::Attr {
        ino: i.ino,
        kind: kind_to_wire(i.kind) as i32,
        mode: i.mode,
        uid: i.uid,
        gid: i.gid,
        size: i.size,
        nlink: i.nlink,
        atime_ns: i.atime_ns,
        mtime_ns: i.mtime_ns,
        ctime_ns: i.ctime_ns,
        layout: Some(layout_to_wire(&i.layout)),
        key: i.key.as_ref().map(|k| pb::WrappedKey {
            kek_id: k.kek_id.clone(),
            kek_version: k.kek_version,
            suite: k.suite,
            wrapped: k.wrapped.clone(),
            format: k.format,
        }),
        rdev: i.rdev,
        manifest: i.manifest.as_ref().map(manifest_to_wire),
        no_xattrs: i.xattrs.is_empty(),
    }
}

pub fn chunk_to_wire(c: &ChunkRef) -> pb::Chunk {
    pb::Chunk {
        index: c.index,
        version: c.version,
        sealed_len: c.sealed_len,
        pg: c.pg,
        format: c.format,
        cap: None,
        data_shards: c.data_shards,
    }
}

pub fn chunk_from_wire(c: &pb::Chunk) -> ChunkRef {
    ChunkRef {
        index: c.index,
        version: c.version,
        sealed_len: c.sealed_len,
        pg: c.pg,
        format: c.format,
        data_shards: c.data_shards,
    }
}

pub fn released_to_wire(r: &Released) -> pb::Released {
    pb::Released { file_id: r.file_id, chunks: r.chunks.iter().map(chunk_to_wire).collect(), attr: None }
}

pub fn layout_from_wire(l: &pb::Layout) -> Layout {
    Layout { chunk_size: l.chunk_size, data_shards: l.data_shards, parity_shards: l.parity_shards }
}

/// A SetAttr request's changes; `*_now` become the leader's time `now`.
pub fn set_attrs_from_wire(s: &pb::SetAttr, now: i64) -> SetAttrs {
    SetAttrs {
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        atime_ns: if s.atime_now { Some(now) } else { s.atime_ns },
        mtime_ns: if s.mtime_now { Some(now) } else { s.mtime_ns },
        manifest: manifest_from_wire(s.manifest.as_ref()),
    }
}

pub fn xattr_mode_from_wire(mode: i32) -> Result<XattrMode, OpError> {
    match pb::XattrMode::try_from(mode) {
        Ok(pb::XattrMode::Any) => Ok(XattrMode::Any),
        Ok(pb::XattrMode::Create) => Ok(XattrMode::Create),
        Ok(pb::XattrMode::Replace) => Ok(XattrMode::Replace),
        Err(_) => Err(OpError::new(ErrorCode::InvalidArgument, "unknown xattr mode")),
    }
}

pub fn error_response(e: &OpError) -> pb::MetaResponse {
    pb::MetaResponse {
        error: Some(pb::Error {
            code: code_to_wire(e.code) as i32,
            message: e.message.clone(),
            retryable: e.code.retryable(),
            leader_hint: String::new(),
        }),
        body: None,
        dirs: Vec::new(),
        ..Default::default()
    }
}

pub fn ok(body: pb::meta_response::Body) -> pb::MetaResponse {
    pb::MetaResponse { error: None, body: Some(body), dirs: Vec::new(), ..Default::default() }
}
