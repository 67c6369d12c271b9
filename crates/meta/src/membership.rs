//! Metadata-server membership changes: turning an admin request into a
//! raft-rs `ConfChangeV2`, and a committed change into transport updates.
//!
//! One server is added or removed per change (a simple, non-joint change).
//! The added server's address rides in the entry's context, so every server
//! (and any server restored from a later snapshot, which lists the members)
//! learns where to reach it. The context also lists the voters after the
//! change (format 2: `addr\nvoters=1,2,3`; format 1 was the address alone):
//! a server that joined empty (`--join`) and learns the log from its start
//! rather than from a snapshot has no voters to apply the first change it
//! meets to, and takes the listed ones instead (applying "add me" to an
//! empty configuration would make it its own one-voter cluster).

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

/// The context of a proposed change: the added server's address and the
/// voters after the change.
pub fn encode_context(addr: &str, voters: &[u64], cc: &ConfChangeV2) -> Vec<u8> {
    let mut after: Vec<u64> = voters.to_vec();
    for c in cc.get_changes() {
        match c.get_change_type() {
            ConfChangeType::AddNode => after.push(c.node_id),
            ConfChangeType::RemoveNode => after.retain(|v| *v != c.node_id),
            _ => {}
        }
    }
    after.sort_unstable();
    after.dedup();
    let list: Vec<String> = after.iter().map(u64::to_string).collect();
    format!("{addr}\nvoters={}", list.join(",")).into_bytes()
}

/// An entry's context: the address, and the voters after the change when
/// the entry lists them (format 2).
pub fn decode_context(context: &[u8]) -> (String, Option<Vec<u64>>) {
    let text = String::from_utf8_lossy(context);
    let Some((addr, rest)) = text.split_once('\n') else { return (text.into_owned(), None) };
    let voters = rest
        .strip_prefix("voters=")
        .map(|l| l.split(',').filter(|v| !v.is_empty()).filter_map(|v| v.parse().ok()).collect());
    (addr.to_string(), voters)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_carries_the_voters_after_the_change_and_old_contexts_still_read() {
        let add = conf_change(&pb::MetaMembershipChange { id: 3, addr: "h:3".into(), remove: false }, &[1, 2]).unwrap();
        let ctx = encode_context("h:3", &[2, 1], &add);
        assert_eq!(decode_context(&ctx), ("h:3".to_string(), Some(vec![1, 2, 3])));
        let rm =
            conf_change(&pb::MetaMembershipChange { id: 3, addr: String::new(), remove: true }, &[1, 2, 3]).unwrap();
        assert_eq!(decode_context(&encode_context("", &[1, 2, 3], &rm)), (String::new(), Some(vec![1, 2])));
        // Format 1: the address alone.
        assert_eq!(decode_context(b"h:9"), ("h:9".to_string(), None));
    }
}
