//! What the Ready loop (`node.rs`) exchanges with the rest of the server:
//! its inputs, the state it shares, the status it reports, and the encoding
//! of its log entries.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use raft::prelude::Message;
use raft::StateRole;
use shardline_proto::v1 as pb;
use shardline_rpc::code_to_wire;
use shardline_types::ErrorCode;
use tokio::sync::oneshot;

use crate::snapshot_job::Saved;
use crate::state_machine::ApplyRules;
use crate::write_stats::WriteStats;
use crate::MetaError;

/// Version byte of a log entry's payload: `[format][now_ns i64 LE][MetaRequest]`.
/// Formats 1 to 3 share the layout; the format fixes how the entry applies
/// ([`ApplyRules`]), so an old log replays as it first applied. Format 3 is
/// format 2 with the request's `caller` honoured (permission checks,
/// `perm.rs`): written only for requests that carry one, so a build that
/// predates the checks stops on such an entry rather than applying it
/// unchecked; a caller in a format 1 or 2 entry is ignored.
const ENTRY_FORMAT_V1: u8 = 1;
const ENTRY_FORMAT_V2: u8 = 2;
const ENTRY_FORMAT_V3: u8 = 3;

pub type Reply = oneshot::Sender<pb::MetaResponse>;

/// Queries answered together.
pub(crate) type ReadBatch = Vec<(pb::MetaRequest, Reply)>;

/// What the service asks of the loop.
pub enum Input {
    Propose {
        req: pb::MetaRequest,
        reply: Reply,
        /// When the request handler queued it (for [`WriteStats`]).
        queued: Instant,
    },
    Read {
        req: pb::MetaRequest,
        reply: Reply,
    },
    Raft(Vec<Message>),
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
    /// Whether the transport delivered a snapshot to this peer.
    SnapshotSent {
        peer: u64,
        delivered: bool,
    },
    /// Add or remove a metadata server (leader only).
    ConfChange {
        change: pb::MetaMembershipChange,
        reply: Reply,
    },
    /// From the log writer: every Ready up to this number is durable.
    Persisted(u64),
    /// From the log writer: a write failed; the server must stop.
    LogFailed(String),
    /// From a snapshot job: the snapshot is stored (None: a newer one was
    /// already), or storing it failed.
    SnapshotSaved(Result<Option<Saved>, String>),
}

/// One metadata server's own view, for `admin status`.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub id: u64,
    pub role: String,
    pub term: u64,
    pub leader_id: u64,
    pub commit: u64,
    pub applied: u64,
    pub placement: pb::PlacementMap,
    /// Clients holding opens.
    pub open_holders: Vec<u64>,
}

/// State shared with the service without going through the loop.
#[derive(Default)]
pub struct Shared {
    /// The current leader's id (0 when unknown).
    pub leader: AtomicU64,
    /// When this server last became leader (None while it is not).
    pub leader_since: std::sync::Mutex<Option<Instant>>,
    /// Set to stop the Ready loop after its current round.
    pub stop: AtomicBool,
    /// Where metadata writes spend their time.
    pub stats: Arc<WriteStats>,
}

pub(crate) fn decode_entry(data: &[u8]) -> Result<(i64, pb::MetaRequest, ApplyRules), MetaError> {
    let rules = match data.first() {
        Some(&ENTRY_FORMAT_V1) => ApplyRules::V1,
        Some(&ENTRY_FORMAT_V2 | &ENTRY_FORMAT_V3) => ApplyRules::V2,
        _ => return Err(MetaError::CorruptEntry("unknown entry format".into())),
    };
    if data.len() < 9 {
        return Err(MetaError::CorruptEntry("entry shorter than its header".into()));
    }
    let mut now = [0u8; 8];
    now.copy_from_slice(&data[1..9]);
    let mut req = pb::MetaRequest::decode(&data[9..]).map_err(|e| MetaError::CorruptEntry(e.to_string()))?;
    if data[0] != ENTRY_FORMAT_V3 {
        req.caller = None;
    }
    Ok((i64::from_le_bytes(now), req, rules))
}

pub fn unavailable(msg: &str) -> pb::MetaResponse {
    pb::MetaResponse {
        error: Some(pb::Error {
            code: code_to_wire(ErrorCode::Unavailable) as i32,
            message: msg.to_string(),
            retryable: true,
            leader_hint: String::new(),
        }),
        body: None,
        dirs: Vec::new(),
        ..Default::default()
    }
}

pub(crate) fn role_name(r: StateRole) -> &'static str {
    match r {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre-candidate",
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// A log entry's payload for `req`, proposed now.
pub(crate) fn encode_entry(req: &pb::MetaRequest) -> Vec<u8> {
    let mut data = Vec::with_capacity(9 + req.encoded_len());
    data.push(if req.caller.is_some() { ENTRY_FORMAT_V3 } else { ENTRY_FORMAT_V2 });
    data.extend_from_slice(&now_ns().to_le_bytes());
    req.encode(&mut data).unwrap_or_else(|_| unreachable!("Vec grows"));
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::MetaRequest {
        pb::MetaRequest {
            client_id: 3,
            request_id: 4,
            caller: None,
            cache: false,
            body: Some(pb::meta_request::Body::Status(pb::GetStatus {})),
        }
    }

    #[test]
    fn new_entries_are_format_two_and_format_one_entries_still_decode() {
        let new = encode_entry(&request());
        assert_eq!(new[0], ENTRY_FORMAT_V2);
        let (_, req, rules) = decode_entry(&new).expect("decode a new entry");
        assert_eq!((req, rules), (request(), ApplyRules::V2));
        // An entry as builds before format 2 wrote it: same layout, byte 1.
        let mut old = new.clone();
        old[0] = ENTRY_FORMAT_V1;
        let (now, req, rules) = decode_entry(&old).expect("decode a format-1 entry");
        assert_eq!((req, rules), (request(), ApplyRules::V1));
        assert_eq!(now.to_le_bytes(), new[1..9]);
        for bad in [vec![4u8; 12], vec![ENTRY_FORMAT_V2, 0, 0], vec![]] {
            assert!(decode_entry(&bad).is_err(), "{bad:?} decoded");
        }
    }

    #[test]
    fn a_caller_is_written_as_format_three_and_ignored_in_older_formats() {
        let caller = pb::Caller { uid: Some(1000), gid: 100, ..Default::default() };
        let with = pb::MetaRequest { caller: Some(caller), cache: false, ..request() };
        let data = encode_entry(&with);
        assert_eq!(data[0], ENTRY_FORMAT_V3);
        let (_, req, rules) = decode_entry(&data).expect("decode a format-3 entry");
        assert_eq!((req, rules), (with.clone(), ApplyRules::V2));
        // The same bytes under format 2 apply as format 2 did: unchecked.
        let mut old = data;
        old[0] = ENTRY_FORMAT_V2;
        assert_eq!(decode_entry(&old).expect("decode").1, request());
    }
}
