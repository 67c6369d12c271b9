//! The one membership change a leader has proposed and not yet applied,
//! and the admin request waiting for it.
//!
//! raft-rs may turn a proposed configuration change into an empty normal
//! entry at the same index: it does so whenever an earlier change may still
//! be unapplied, which includes every leader's first moments (a new leader
//! counts its whole log as possibly holding one). That entry applies like
//! any other, but no membership change is ever applied at its index. The
//! waiting request is therefore answered when the log applies *any* entry
//! at or past the proposal's index: with the new membership if the change
//! was there, else with a retryable "not taken" error. (Found by the
//! nemesis, issue 13: a leader that proposed a change in its first moments
//! refused every later change, "another membership change is in progress",
//! for as long as it led.)

use shardline_proto::v1 as pb;

use crate::node_io::Reply;

/// At most one proposed change, with its log index and waiting reply.
#[derive(Default)]
pub struct PendingChange {
    waiting: Option<(u64, Reply)>,
}

/// What became of the pending change when an entry applied.
pub enum Settled {
    /// The entry at the proposal's index was the change: answer with the
    /// new membership.
    Applied(Reply),
    /// The log moved past the proposal's index without it: answer that it
    /// was not taken and may be asked again.
    Dropped(Reply),
}

impl PendingChange {
    pub fn is_some(&self) -> bool {
        self.waiting.is_some()
    }

    /// A change was proposed at log index `index`.
    pub fn start(&mut self, index: u64, reply: Reply) {
        self.waiting = Some((index, reply));
    }

    /// The entry at `index` applied; `membership` says whether it was a
    /// membership change.
    pub fn applied(&mut self, index: u64, membership: bool) -> Option<Settled> {
        let at = self.waiting.as_ref()?.0;
        if index < at {
            return None;
        }
        let (_, reply) = self.waiting.take()?;
        Some(if index == at && membership { Settled::Applied(reply) } else { Settled::Dropped(reply) })
    }

    /// Leadership was lost: the waiting request, to be told so.
    pub fn take(&mut self) -> Option<Reply> {
        self.waiting.take().map(|(_, reply)| reply)
    }
}

/// The answer to a change the log dropped.
pub fn not_taken() -> pb::MetaResponse {
    crate::node_io::unavailable(
        "the membership change was not taken (the leader was still applying an earlier one); ask again",
    )
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType};
    use raft::storage::MemStorage;
    use raft::{Config, RawNode};
    use tokio::sync::oneshot;

    use super::*;

    #[test]
    fn a_change_applied_at_its_index_is_answered_with_the_membership() {
        let mut p = PendingChange::default();
        let (tx, _rx) = oneshot::channel();
        p.start(7, tx);
        assert!(p.applied(6, false).is_none(), "entries before it leave it waiting");
        assert!(p.is_some());
        assert!(matches!(p.applied(7, true), Some(Settled::Applied(_))));
        assert!(!p.is_some());
    }

    #[test]
    fn a_change_the_log_dropped_is_answered_and_frees_the_next_one() {
        let mut p = PendingChange::default();
        let (tx, _rx) = oneshot::channel();
        p.start(7, tx);
        // raft-rs put an empty normal entry at index 7 instead.
        assert!(matches!(p.applied(7, false), Some(Settled::Dropped(_))));
        assert!(!p.is_some(), "the next change may be proposed");
        // Overwritten by another leader's log: a later index settles it too.
        let (tx, _rx) = oneshot::channel();
        p.start(9, tx);
        assert!(matches!(p.applied(12, true), Some(Settled::Dropped(_))));
    }

    /// The premise: raft-rs turns a change a fresh leader proposes before
    /// applying its log into an empty normal entry at the same index.
    #[test]
    fn raft_rs_turns_a_fresh_leaders_change_into_an_empty_entry() {
        let storage = MemStorage::new_with_conf_state((vec![1], vec![]));
        // A log from an earlier term, not yet applied (a restarted server).
        let old: Vec<Entry> = (1..=3)
            .map(|index| {
                let mut e = Entry::default();
                (e.index, e.term) = (index, 1);
                e
            })
            .collect();
        storage.wl().append(&old).expect("append");
        let cfg = Config { id: 1, election_tick: 10, heartbeat_tick: 2, ..Default::default() };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut node = RawNode::new(&cfg, storage, &logger).expect("raw node");
        node.campaign().expect("campaign");
        assert_eq!(node.raft.state, raft::StateRole::Leader);
        let mut add = ConfChangeSingle::default();
        add.set_change_type(ConfChangeType::AddNode);
        add.node_id = 2;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![add].into());
        node.propose_conf_change(vec![], cc).expect("proposed");
        let last = node.raft.raft_log.last_index();
        let entry = &node.raft.raft_log.entries(last, 1, raft::GetEntriesContext::empty(false)).expect("entry")[0];
        assert_eq!(entry.get_entry_type(), EntryType::EntryNormal, "the change was replaced");
        assert!(entry.data.is_empty());
    }
}
