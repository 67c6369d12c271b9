//! Shard requests to data servers (used by clients, and by data servers
//! rebuilding shards from their peers).

use crate::{code_from_wire, Frame, Pool};
use bytes::Bytes;
use shardline_proto::v1 as pb;
use shardline_proto::v1::data_request::Body;
use shardline_types::{ErrorCode, ShardKey};

/// Why one shard request failed (the caller decides whether another shard
/// can stand in).
#[derive(Debug, Clone)]
pub struct ShardError {
    pub code: ErrorCode,
    pub detail: String,
}

impl std::fmt::Display for ShardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

pub fn wire_id(k: &ShardKey) -> pb::ShardId {
    pb::ShardId { file_id: k.file_id, chunk_index: k.chunk_index, version: k.version, shard_index: k.shard_index }
}

async fn call(pool: &Pool, addr: &str, body: Body, payload: Bytes) -> Result<(pb::DataResponse, Bytes), ShardError> {
    let req = pb::DataRequest { body: Some(body) };
    let resp = pool
        .call(addr, &Frame::from_message(&req, payload))
        .await
        .map_err(|e| ShardError { code: ErrorCode::Unavailable, detail: e.to_string() })?;
    let msg: pb::DataResponse = resp
        .decode()
        .map_err(|e| ShardError { code: ErrorCode::Corrupt, detail: format!("bad response from {addr}: {e}") })?;
    if let Some(e) = &msg.error {
        return Err(ShardError { code: code_from_wire(e.code), detail: format!("{addr}: {}", e.message) });
    }
    Ok((msg, resp.payload))
}

/// Store a shard durably. `ec` is the chunk's (k, m), kept with the shard.
/// `cap`: the metadata service's capability for this chunk version (ops:
/// put), which servers that check capabilities require.
pub async fn put(
    pool: &Pool,
    addr: &str,
    key: &ShardKey,
    data: Bytes,
    cap: Option<&pb::ShardCap>,
    epoch: u64,
    ec: (u32, u32),
) -> Result<(), ShardError> {
    let crc = crc32c::crc32c(&data);
    let put = pb::PutShard {
        id: Some(wire_id(key)),
        crc32c: crc,
        epoch,
        data_shards: ec.0,
        parity_shards: ec.1,
        cap: cap.cloned(),
    };
    call(pool, addr, Body::Put(put), data).await.map(|_| ())
}

/// Fetch a shard and check its CRC32C end to end. `cap`: a capability
/// with ops get.
pub async fn get(
    pool: &Pool,
    addr: &str,
    key: &ShardKey,
    cap: Option<&pb::ShardCap>,
    epoch: u64,
) -> Result<Bytes, ShardError> {
    get_range(pool, addr, key, cap, epoch, 0, 0).await
}

/// Read `len` bytes (0: to the end) of a shard from `offset`, verified by
/// the reply's CRC32C. A server that predates ranges sends the whole shard;
/// the range is then cut here.
pub async fn get_range(
    pool: &Pool,
    addr: &str,
    key: &ShardKey,
    cap: Option<&pb::ShardCap>,
    epoch: u64,
    offset: u64,
    len: u64,
) -> Result<Bytes, ShardError> {
    let req = pb::GetShard { id: Some(wire_id(key)), epoch, offset, length: len, cap: cap.cloned() };
    let (msg, payload) = call(pool, addr, Body::Get(req), Bytes::new()).await?;
    let Some(pb::data_response::Body::Get(ok)) = msg.body else {
        return Err(ShardError { code: ErrorCode::Corrupt, detail: format!("{addr}: response without shard") });
    };
    if crc32c::crc32c(&payload) != ok.crc32c {
        return Err(ShardError { code: ErrorCode::Corrupt, detail: format!("{addr}: shard failed its checksum") });
    }
    let whole = ok.shard_len == 0 && ok.offset == 0;
    if (offset == 0 && len == 0) || !whole {
        return Ok(payload);
    }
    // An older server answered with the whole shard.
    let start = (offset as usize).min(payload.len());
    let end = if len == 0 { payload.len() } else { (start + len as usize).min(payload.len()) };
    Ok(payload.slice(start..end))
}

/// Delete a shard (missing is fine). `cap`: a capability with ops delete.
pub async fn delete(pool: &Pool, addr: &str, key: &ShardKey, cap: Option<&pb::ShardCap>) -> Result<(), ShardError> {
    let body = Body::Delete(pb::DeleteShard { id: Some(wire_id(key)), cap: cap.cloned() });
    call(pool, addr, body, Bytes::new()).await.map(|_| ())
}
