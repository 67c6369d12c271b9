//! Every Raft message from the network is checked here before raft-rs sees
//! it (issue 12 item 6). raft-rs trusts its peers: an entry it persists is
//! applied later, and some malformed messages reach its `fatal!` paths (a
//! panic). A message that fails a check is refused with a clear error and
//! never stepped, so a forged or damaged one can neither stop this server
//! nor leave an entry in its log that it cannot apply at every restart.
//!
//! Checked without state: the message is addressed to this server, comes
//! from the peer its envelope names (not 0, not this server), is of a type
//! peers send, carries a term (all but a forwarded read index do); a
//! read-index message carries exactly one read context (raft-rs indexes it
//! unchecked); an append's entries follow the index it appends after, one by one,
//! with terms that never fall and never pass the message's term, and each
//! decodes as what it claims to be (a `MetaRequest` entry in this crate's
//! format, a conf change, a conf change v2 whose context is an address);
//! a snapshot has a sane `ConfState` and data that decodes as a snapshot.
//! The Ready loop adds the checks that need the log (`node.rs`).

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType};

use crate::node_io::decode_entry;

/// Most entries one append may carry.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 100_000;
/// Longest address a membership change may carry.
const MAX_ADDR_LEN: usize = 256;

/// Parse and check every message of `batch` for server `me`; the first
/// failure refuses the whole batch.
pub fn parse_checked(batch: &shardline_proto::v1::RaftBatch, me: u64) -> Result<Vec<Message>, String> {
    batch
        .messages
        .iter()
        .map(|bytes| {
            let m = Message::parse_from_bytes(bytes).map_err(|e| format!("undecodable raft message: {e}"))?;
            check(&m, batch.from, me)?;
            Ok(m)
        })
        .collect()
}

/// Check message `m`, which arrived in an envelope from peer `from`, for
/// server `me`.
pub fn check(m: &Message, from: u64, me: u64) -> Result<(), String> {
    if m.to != me {
        return Err(format!("raft message for server {}, this is server {me}", m.to));
    }
    if m.from != from || from == 0 || from == me {
        return Err(format!("raft message from {} in an envelope from {from}", m.from));
    }
    let ty = m.get_msg_type();
    if !sent_by_peers(ty) {
        return Err(format!("raft message type {ty:?} is never sent between servers"));
    }
    // raft-rs stamps its term on every message a peer sends but a forwarded
    // read index; a vote (or a vote's answer) without one reaches a `fatal!`.
    if m.term == 0 && ty != MessageType::MsgReadIndex {
        return Err(format!("a {ty:?} without a term"));
    }
    check_entries(m)?;
    if ty == MessageType::MsgSnapshot {
        check_snapshot(m, me)?;
    } else if m.snapshot.is_some() {
        return Err(format!("a {ty:?} carries a snapshot"));
    }
    Ok(())
}

/// The checks that need this server's log, whose last index is `last`:
/// false when `m` must be dropped. A server that lost its log (wiped, then
/// re-added) may hear a commit index beyond it, on which raft-rs would
/// panic, so a heartbeat's commit hint is lowered to the log's end (a lower
/// hint is always safe). An acknowledgement of entries this log does not
/// have would move the commit index past its end (a raft-rs panic); no real
/// peer sends one, so it is dropped.
pub fn fit_to_log(m: &mut Message, last: u64) -> bool {
    if m.get_msg_type() == MessageType::MsgHeartbeat && m.commit > last {
        m.commit = last;
    }
    !(m.get_msg_type() == MessageType::MsgAppendResponse && !m.reject && m.index > last)
}

/// Types a peer sends; the rest are local to a node (hup, beat,
/// unreachable, snapshot status, check quorum) or unused here (proposals
/// are never forwarded: clients reach the leader).
fn sent_by_peers(ty: MessageType) -> bool {
    use MessageType::*;
    matches!(
        ty,
        MsgAppend
            | MsgAppendResponse
            | MsgRequestVote
            | MsgRequestVoteResponse
            | MsgSnapshot
            | MsgHeartbeat
            | MsgHeartbeatResponse
            | MsgTransferLeader
            | MsgTimeoutNow
            | MsgReadIndex
            | MsgReadIndexResp
            | MsgRequestPreVote
            | MsgRequestPreVoteResponse
    )
}

/// Longest read context a ReadIndex message may carry (this crate's are 8
/// bytes).
const MAX_READ_CONTEXT: usize = 64;

fn check_entries(m: &Message) -> Result<(), String> {
    match m.get_msg_type() {
        MessageType::MsgAppend => {}
        // raft-rs reads `entries[0]` of these unchecked: exactly one, the
        // read's context.
        MessageType::MsgReadIndex | MessageType::MsgReadIndexResp => {
            return match m.entries.first() {
                Some(e) if m.entries.len() == 1 && e.data.len() <= MAX_READ_CONTEXT => Ok(()),
                _ => Err(format!("a {:?} must carry exactly one short read context", m.get_msg_type())),
            };
        }
        _ if m.entries.is_empty() => return Ok(()),
        ty => return Err(format!("a {ty:?} carries entries")),
    }
    if m.entries.is_empty() {
        return Ok(());
    }
    if m.entries.len() > MAX_ENTRIES_PER_MESSAGE {
        return Err(format!("an append of {} entries", m.entries.len()));
    }
    let mut term = 0;
    for (i, e) in m.entries.iter().enumerate() {
        let want = m.index.checked_add(1 + i as u64).ok_or("entry index overflows")?;
        if e.index != want {
            return Err(format!("entry {i} has index {}, expected {want}", e.index));
        }
        if e.term < term || e.term > m.term || e.term < m.log_term {
            return Err(format!("entry {} has term {} (message term {})", e.index, e.term, m.term));
        }
        term = e.term;
        check_entry(e).map_err(|why| format!("entry {}: {why}", e.index))?;
    }
    Ok(())
}

/// Whether the Ready loop could apply `e`.
pub fn check_entry(e: &Entry) -> Result<(), String> {
    match e.get_entry_type() {
        // A new leader's empty entry.
        EntryType::EntryNormal if e.data.is_empty() => Ok(()),
        EntryType::EntryNormal => decode_entry(&e.data).map(|_| ()).map_err(|e| e.to_string()),
        EntryType::EntryConfChange => {
            ConfChange::parse_from_bytes(&e.data).map(|_| ()).map_err(|e| format!("conf change: {e}"))
        }
        EntryType::EntryConfChangeV2 => {
            ConfChangeV2::parse_from_bytes(&e.data).map_err(|e| format!("conf change: {e}"))?;
            let text = std::str::from_utf8(&e.context).map_err(|_| "conf change address is not UTF-8")?;
            // Format 2 (`membership::encode_context`): the address, then a
            // line with the voters after the change; format 1: the address.
            let (addr, voters) = match text.split_once('\n') {
                Some((addr, rest)) => (addr, Some(rest)),
                None => (text, None),
            };
            check_addr(addr)?;
            if let Some(rest) = voters {
                let list = rest.strip_prefix("voters=").ok_or("conf change context: no voters line")?;
                if list.len() > MAX_ADDR_LEN || !list.split(',').all(|v| v.is_empty() || v.parse::<u64>().is_ok()) {
                    return Err("conf change context: the voters are not a list of ids".into());
                }
            }
            Ok(())
        }
    }
}

/// An address a membership change may carry: short, with no control
/// character (a newline would split the entry's context). The leader checks
/// the address it is asked to add with this too, so it never proposes an
/// entry its followers refuse.
pub fn check_addr(addr: &str) -> Result<(), String> {
    if addr.len() > MAX_ADDR_LEN || addr.chars().any(char::is_control) {
        return Err(format!(
            "conf change address is not an address (at most {MAX_ADDR_LEN} bytes, no control characters)"
        ));
    }
    Ok(())
}

fn check_snapshot(m: &Message, me: u64) -> Result<(), String> {
    let snap = m.snapshot.as_ref().ok_or("a snapshot message without a snapshot")?;
    let meta = snap.metadata.as_ref().ok_or("a snapshot without metadata")?;
    if meta.index == 0 || meta.term == 0 || meta.term > m.term {
        return Err(format!("snapshot at index {} term {} (message term {})", meta.index, meta.term, m.term));
    }
    let cs = meta.conf_state.as_ref().ok_or("a snapshot without a conf state")?;
    check_conf_state(cs, me)?;
    crate::snapshot::decode(&snap.data).map(|_| ()).map_err(|e| format!("snapshot data: {e}"))
}

/// A `ConfState` raft-rs can restore: voters, no one twice, learners apart
/// from voters, a joint configuration only as raft-rs makes one, and this
/// server in it.
pub fn check_conf_state(cs: &ConfState, me: u64) -> Result<(), String> {
    let set = |ids: &[u64], what: &str| -> Result<std::collections::BTreeSet<u64>, String> {
        let s: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
        if s.len() != ids.len() || s.contains(&0) {
            return Err(format!("conf state {what} repeat an id or name 0"));
        }
        Ok(s)
    };
    let voters = set(&cs.voters, "voters")?;
    let learners = set(&cs.learners, "learners")?;
    let outgoing = set(&cs.voters_outgoing, "outgoing voters")?;
    let next = set(&cs.learners_next, "next learners")?;
    if voters.is_empty() {
        return Err("conf state without voters".into());
    }
    if !voters.is_disjoint(&learners) || !outgoing.is_disjoint(&learners) {
        return Err("conf state has a voter that is also a learner".into());
    }
    if outgoing.is_empty() {
        if !next.is_empty() || cs.auto_leave {
            return Err("conf state is joint without outgoing voters".into());
        }
    } else if !next.is_subset(&outgoing) || !next.is_disjoint(&voters) {
        return Err("conf state's next learners are not leaving voters".into());
    }
    if !voters.contains(&me) && !learners.contains(&me) && !outgoing.contains(&me) {
        return Err(format!("conf state without this server ({me})"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "raft_guard_tests.rs"]
mod tests;
