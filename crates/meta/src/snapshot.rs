//! State-machine snapshots: the whole replicated state (namespace, registry,
//! dedup map) as one versioned blob, taken every N applied entries so the
//! Raft log can be compacted, and sent to followers too far behind the log.
//!
//! Format: `[SNAPSHOT_FORMAT_V1][prost v1::Snapshot]`. The v1 messages below
//! are frozen: a later format adds a `v2` module and keeps decoding v1.
//! Conversions to and from the live types sit beside those types
//! (`namespace_snapshot.rs`, `registry_snapshot.rs`, `state_machine_snapshot.rs`),
//! where they can see private fields.

use std::collections::BTreeMap;

use prost::Message as _;

use crate::state_machine::StateMachine;
use crate::MetaError;

/// Version byte of a snapshot blob.
pub const SNAPSHOT_FORMAT_V1: u8 = 1;

/// The frozen v1 snapshot messages (prost, hand-declared: they are an on-disk
/// format of this crate, not part of the wire protocol). Frozen means fields
/// are only ever added, with new tags and defaults that mean "as before"
/// (`Inode::rdev`, the special-file kinds), or changed to a type with the
/// same wire encoding (names: `string` to `bytes`), so every older v1 blob
/// decodes.
pub mod v1 {
    use shardline_proto::v1 as pb;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Snapshot {
        #[prost(message, optional, tag = "1")]
        pub namespace: Option<Namespace>,
        #[prost(message, optional, tag = "2")]
        pub registry: Option<Registry>,
        /// Recent responses per client, oldest first.
        #[prost(message, repeated, tag = "3")]
        pub recent: Vec<ClientRecent>,
        /// Metadata servers (Raft members) by id → address.
        #[prost(message, repeated, tag = "4")]
        pub members: Vec<Member>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Member {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(string, tag = "2")]
        pub addr: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ClientRecent {
        #[prost(uint64, tag = "1")]
        pub client_id: u64,
        #[prost(message, repeated, tag = "2")]
        pub responses: Vec<Recent>,
        /// When the client's last mutation was applied (leader time, ns;
        /// added compatibly: older snapshots have 0, forgotten first).
        #[prost(int64, tag = "3")]
        pub last_ns: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Recent {
        #[prost(uint64, tag = "1")]
        pub request_id: u64,
        #[prost(message, optional, tag = "2")]
        pub response: Option<pb::MetaResponse>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Namespace {
        #[prost(message, repeated, tag = "1")]
        pub inodes: Vec<Inode>,
        #[prost(message, repeated, tag = "2")]
        pub dirs: Vec<Dir>,
        /// (directory, parent) pairs.
        #[prost(message, repeated, tag = "3")]
        pub dir_parents: Vec<Pair>,
        /// (inode, open count) pairs, from before opens had holders: read
        /// as held by client 0, never written.
        #[prost(message, repeated, tag = "4")]
        pub open: Vec<Pair>,
        #[prost(uint64, tag = "5")]
        pub next_ino: u64,
        /// Opens by holder.
        #[prost(message, repeated, tag = "6")]
        pub open_by: Vec<OpenBy>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OpenBy {
        #[prost(uint64, tag = "1")]
        pub ino: u64,
        #[prost(uint64, tag = "2")]
        pub client: u64,
        #[prost(uint32, tag = "3")]
        pub count: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Pair {
        #[prost(uint64, tag = "1")]
        pub a: u64,
        #[prost(uint64, tag = "2")]
        pub b: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dir {
        #[prost(uint64, tag = "1")]
        pub ino: u64,
        /// Entry names: bytes, not necessarily UTF-8. Declared `string`
        /// before names became bytes; the wire type is the same, so older
        /// snapshots decode unchanged.
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub names: Vec<Vec<u8>>,
        /// Parallel to `names`.
        #[prost(uint64, repeated, tag = "3")]
        pub inos: Vec<u64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Layout {
        #[prost(uint32, tag = "1")]
        pub chunk_size: u32,
        #[prost(uint32, tag = "2")]
        pub data_shards: u32,
        #[prost(uint32, tag = "3")]
        pub parity_shards: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileKey {
        #[prost(string, tag = "1")]
        pub kek_id: String,
        #[prost(uint32, tag = "2")]
        pub kek_version: u32,
        #[prost(int32, tag = "3")]
        pub suite: i32,
        #[prost(bytes = "vec", tag = "4")]
        pub wrapped: Vec<u8>,
        /// Wrap format (added compatibly: older snapshots have 0, format 1).
        #[prost(uint32, tag = "5")]
        pub format: u32,
    }

    /// A file's integrity manifest (added compatibly with `Inode::manifest`:
    /// older snapshots have none, as their files need none).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Manifest {
        #[prost(uint32, tag = "1")]
        pub format: u32,
        #[prost(uint64, tag = "2")]
        pub seq: u64,
        #[prost(bytes = "vec", tag = "3")]
        pub mac: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Chunk {
        #[prost(uint64, tag = "1")]
        pub index: u64,
        #[prost(uint64, tag = "2")]
        pub version: u64,
        #[prost(uint32, tag = "3")]
        pub sealed_len: u32,
        #[prost(uint32, tag = "4")]
        pub pg: u32,
        /// Chunk format (added compatibly: older snapshots have 0, format 1).
        #[prost(uint32, tag = "5")]
        pub format: u32,
        /// The chunk's own k (added compatibly: older snapshots have 0, the
        /// file's layout's k).
        #[prost(uint32, tag = "6")]
        pub data_shards: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Xattr {
        /// Bytes; `string` before, with the same wire type (see `Dir::names`).
        #[prost(bytes = "vec", tag = "1")]
        pub name: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Inode {
        #[prost(uint64, tag = "1")]
        pub ino: u64,
        /// 0 regular, 1 directory, 2 symlink, 3 fifo, 4 socket, 5 character
        /// device, 6 block device (3–6 added compatibly: older snapshots
        /// simply have none).
        #[prost(uint32, tag = "2")]
        pub kind: u32,
        #[prost(uint32, tag = "3")]
        pub mode: u32,
        #[prost(uint32, tag = "4")]
        pub uid: u32,
        #[prost(uint32, tag = "5")]
        pub gid: u32,
        #[prost(uint64, tag = "6")]
        pub size: u64,
        #[prost(uint32, tag = "7")]
        pub nlink: u32,
        #[prost(sint64, tag = "8")]
        pub atime_ns: i64,
        #[prost(sint64, tag = "9")]
        pub mtime_ns: i64,
        #[prost(sint64, tag = "10")]
        pub ctime_ns: i64,
        #[prost(message, optional, tag = "11")]
        pub layout: Option<Layout>,
        #[prost(message, optional, tag = "12")]
        pub key: Option<FileKey>,
        #[prost(message, repeated, tag = "13")]
        pub chunks: Vec<Chunk>,
        #[prost(bytes = "vec", tag = "14")]
        pub target: Vec<u8>,
        #[prost(message, repeated, tag = "15")]
        pub xattrs: Vec<Xattr>,
        /// Devices' dev_t. Added compatibly: absent in older snapshots (0).
        #[prost(uint64, tag = "16")]
        pub rdev: u64,
        /// The file's manifest. Added compatibly: absent in older snapshots.
        #[prost(message, optional, tag = "17")]
        pub manifest: Option<Manifest>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Registry {
        #[prost(message, repeated, tag = "1")]
        pub servers: Vec<Server>,
        #[prost(uint64, tag = "2")]
        pub epoch: u64,
        #[prost(uint64, tag = "3")]
        pub width: u64,
        #[prost(uint32, tag = "4")]
        pub pg_count: u32,
        #[prost(message, repeated, tag = "5")]
        pub groups: Vec<Group>,
        #[prost(message, repeated, tag = "6")]
        pub rebuilding: Vec<Rebuild>,
        #[prost(uint64, repeated, tag = "7")]
        pub pg_epochs: Vec<u64>,
        /// Hand-offs not yet released (drain, rebalance). Tags 8-10 added
        /// compatibly: absent in older snapshots (none, none, 0).
        #[prost(message, repeated, tag = "8")]
        pub handoffs: Vec<Rebuild>,
        #[prost(uint64, repeated, tag = "9")]
        pub removed: Vec<u64>,
        #[prost(uint64, tag = "10")]
        pub move_rate: u64,
        /// Added compatibly: absent in older snapshots (false).
        #[prost(bool, tag = "11")]
        pub repair_paused: bool,
        /// Added compatibly: absent in older snapshots (false).
        #[prost(bool, tag = "12")]
        pub scrub_paused: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Server {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(string, tag = "2")]
        pub addr: String,
        #[prost(uint64, tag = "3")]
        pub capacity_bytes: u64,
        #[prost(string, tag = "4")]
        pub rack: String,
        #[prost(bool, tag = "5")]
        pub down: bool,
        /// Added compatibly: absent in older snapshots (false).
        #[prost(bool, tag = "6")]
        pub draining: bool,
        /// Added compatibly: absent in older snapshots (false).
        #[prost(bool, tag = "7")]
        pub pending: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Group {
        #[prost(uint64, repeated, tag = "1")]
        pub targets: Vec<u64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Rebuild {
        #[prost(uint32, tag = "1")]
        pub pg: u32,
        #[prost(uint32, tag = "2")]
        pub shard_index: u32,
        #[prost(uint64, tag = "3")]
        pub server: u64,
    }
}

/// A corrupt or unknown snapshot (never a panic).
pub(crate) fn corrupt(what: &str) -> MetaError {
    MetaError::CorruptSnapshot(what.to_string())
}

/// Serialize the state machine and the Raft members' addresses.
pub fn encode(sm: &StateMachine, members: &BTreeMap<u64, String>) -> Vec<u8> {
    let mut snap = sm.to_snapshot();
    snap.members = members.iter().map(|(&id, addr)| v1::Member { id, addr: addr.clone() }).collect();
    let mut out = Vec::with_capacity(1 + snap.encoded_len());
    out.push(SNAPSHOT_FORMAT_V1);
    snap.encode(&mut out).unwrap_or_else(|_| unreachable!("Vec grows"));
    out
}

/// Rebuild a state machine (and the members' addresses) from [`encode`]'s output.
pub fn decode(data: &[u8]) -> Result<(StateMachine, BTreeMap<u64, String>), MetaError> {
    match data.split_first() {
        Some((&SNAPSHOT_FORMAT_V1, rest)) => {
            let snap = v1::Snapshot::decode(rest).map_err(|e| corrupt(&e.to_string()))?;
            let members = snap.members.iter().map(|m| (m.id, m.addr.clone())).collect();
            Ok((StateMachine::from_snapshot(snap)?, members))
        }
        Some((v, _)) => Err(corrupt(&format!("unknown snapshot format {v}"))),
        None => Err(corrupt("empty snapshot")),
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
pub(crate) mod tests;
