//! Metadata-server membership changes: turning an admin request into a
//! raft-rs `ConfChangeV2`, and a committed change into transport updates.
//!
//! One server is added or removed per change (a simple, non-joint change).
//! The added server's address rides in the entry's context, so every server
//! (and any server restored from a later snapshot, which lists the members)
//! learns where to reach it.

use raft::prelude::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use raft::RawNode;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::ErrorCode;

use crate::log_cache::LogCache;
use crate::namespace::OpError;
use crate::transport::Peers;
use crate::wire::ok;

/// The change to propose, or the error to answer with.
pub fn conf_change(change: &pb::MetaMembershipChange, voters: &[u64]) -> Result<ConfChangeV2, OpError> {
    let invalid = |m: &str| OpError::new(ErrorCode::InvalidArgument, m);
    if change.id == 0 {
        return Err(invalid("metadata server ids start at 1"));
    }
    let present = voters.contains(&change.id);
    let change_type = if change.remove {
        if !present {
            return Err(invalid("no such metadata server"));
        }
        if voters.len() <= 1 {
            return Err(invalid("cannot remove the last metadata server"));
        }
        ConfChangeType::RemoveNode
    } else {
        if present {
            return Err(invalid("that metadata server is already a member (remove it first to re-add it)"));
        }
        if change.addr.is_empty() {
            return Err(invalid("a new metadata server needs an address"));
        }
        ConfChangeType::AddNode
    };
    let mut single = ConfChangeSingle::default();
    single.set_change_type(change_type);
    single.node_id = change.id;
    let mut cc = ConfChangeV2::default();
    cc.set_changes(vec![single].into());
    Ok(cc)
}

/// Teach the transport about a committed change.
pub fn update_peers(peers: &mut Peers, cc: &ConfChangeV2, addr: String) {
    for c in cc.get_changes() {
        match c.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode if !addr.is_empty() => {
                peers.set(c.node_id, addr.clone())
            }
            ConfChangeType::RemoveNode => peers.remove(c.node_id),
            _ => {}
        }
    }
}

/// The voters after a change, with their addresses.
pub fn members_response(raw: &RawNode<LogCache>, peers: &Peers) -> pb::MetaResponse {
    let mut ids = raw.raft.prs().conf().to_conf_state().voters;
    ids.sort_unstable();
    let voters = ids.into_iter().map(|id| pb::MetaMember { id, addr: peers.addr_of(id).unwrap_or_default() }).collect();
    ok(RBody::MetaMembers(pb::MetaMembers { voters }))
}
