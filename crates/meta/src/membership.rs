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
    // Followers refuse an entry whose address is not one (raft_guard.rs):
    // proposing it would stall replication for good.
    crate::raft_guard::check_addr(&change.addr).map_err(|why| invalid(&why))?;
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

    /// Found by `fuzz_meta_requests`: an admin's membership change whose
    /// address held a control character (or a newline, or was too long) was
    /// proposed, and every follower's `raft_guard` refused the entry, so
    /// replication stalled for good. It is refused up front now.
    #[test]
    fn fuzz_membership_address_followers_refuse_is_refused_up_front() {
        let long = "h".repeat(300);
        for addr in ["127.0.0.1:9\0\0\0", "h:3\nvoters=1", "h:3\r", long.as_str()] {
            let change = pb::MetaMembershipChange { id: 4, addr: addr.into(), remove: false };
            let e = conf_change(&change, &[1, 2, 3]).expect_err(addr);
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{addr:?}");
            let removal = pb::MetaMembershipChange { id: 3, addr: addr.into(), remove: true };
            assert!(conf_change(&removal, &[1, 2, 3]).is_err(), "{addr:?}");
        }
        let fine = pb::MetaMembershipChange { id: 4, addr: "meta-4.example:7000".into(), remove: false };
        let cc = conf_change(&fine, &[1, 2, 3]).expect("a real address");
        let mut e = raft::prelude::Entry::default();
        e.set_entry_type(raft::prelude::EntryType::EntryConfChangeV2);
        e.data = protobuf::Message::write_to_bytes(&cc).expect("encode").into();
        e.context = encode_context(&fine.addr, &[1, 2, 3], &cc).into();
        assert_eq!(crate::raft_guard::check_entry(&e), Ok(()), "followers accept what the leader proposes");
    }
}
