//! Conversions between the namespace's types and wire messages.

use shardline_proto::v1 as pb;
use shardline_rpc::code_to_wire;
use shardline_types::Layout;

use crate::namespace::{ChunkRef, FileKey, Inode, Kind, OpError, Released};

pub fn layout_to_wire(l: &Layout) -> pb::Layout {
    pb::Layout { chunk_size: l.chunk_size, data_shards: l.data_shards, parity_shards: l.parity_shards }
}

pub fn kind_to_wire(k: Kind) -> pb::FileKind {
    match k {
        Kind::Regular => pb::FileKind::Regular,
        Kind::Directory => pb::FileKind::Directory,
        Kind::Symlink => pb::FileKind::Symlink,
    }
}

pub fn key_from_wire(k: Option<&pb::WrappedKey>) -> Option<FileKey> {
    k.map(|k| FileKey {
        kek_id: k.kek_id.clone(),
        kek_version: k.kek_version,
        suite: k.suite,
        wrapped: k.wrapped.clone(),
    })
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
        }),
    }
}

pub fn chunk_to_wire(c: &ChunkRef) -> pb::Chunk {
    pb::Chunk { index: c.index, version: c.version, sealed_len: c.sealed_len, pg: c.pg }
}

pub fn chunk_from_wire(c: &pb::Chunk) -> ChunkRef {
    ChunkRef { index: c.index, version: c.version, sealed_len: c.sealed_len, pg: c.pg }
}

pub fn released_to_wire(r: &Released) -> pb::Released {
    pb::Released { file_id: r.file_id, chunks: r.chunks.iter().map(chunk_to_wire).collect() }
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
    }
}

pub fn ok(body: pb::meta_response::Body) -> pb::MetaResponse {
    pb::MetaResponse { error: None, body: Some(body) }
}
