//! The state machine, shared between the Ready loop (its only writer) and
//! the request handlers, which answer queries themselves while the leader's
//! read lease holds: no hop through the loop and no wait behind its fsync.
//!
//! The loop publishes until when that is allowed ([`ReadView::allow_until`])
//! after every round: only on the leader, only once it has committed an
//! entry of its own term, only while everything committed is applied, and
//! never past the lease (`lease.rs`). Entries committed after that are not
//! acknowledged to anyone before the loop applies them (under the write
//! lock), so a query answered here sees every write acknowledged before it
//! arrived. Ending the lease withdraws the permission at once.

use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use shardline_proto::v1 as pb;

use crate::state_machine::StateMachine;

pub struct ReadView {
    sm: RwLock<StateMachine>,
    until: Mutex<Option<Instant>>,
}

impl ReadView {
    pub fn new(sm: StateMachine) -> Self {
        ReadView { sm: RwLock::new(sm), until: Mutex::new(None) }
    }

    pub fn sm(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.sm.read().unwrap_or_else(|e| e.into_inner())
    }

    /// For the Ready loop only.
    pub fn sm_mut(&self) -> RwLockWriteGuard<'_, StateMachine> {
        self.sm.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Allow queries here until `until` (None: not now).
    pub fn allow_until(&self, until: Option<Instant>) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }

    /// Whether this server is the leader and its read lease holds now.
    pub fn allowed(&self) -> bool {
        self.until.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|u| Instant::now() < u)
    }

    /// Answer a query here if allowed now.
    pub fn read(&self, req: &pb::MetaRequest) -> Option<pb::MetaResponse> {
        self.allowed().then(|| self.sm().read(req))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shardline_proto::v1::meta_request::Body;
    use shardline_types::{Layout, ROOT_INO};

    use super::*;

    #[test]
    fn answers_only_while_allowed() {
        let view = ReadView::new(StateMachine::new(Layout::default(), 8));
        let req = pb::MetaRequest { body: Some(Body::Getattr(pb::GetAttr { ino: ROOT_INO })), ..Default::default() };
        assert!(view.read(&req).is_none(), "nothing allowed at first");
        view.allow_until(Some(Instant::now() + Duration::from_secs(60)));
        assert!(view.read(&req).is_some_and(|r| r.error.is_none()));
        view.allow_until(Some(Instant::now()));
        assert!(view.read(&req).is_none(), "an expired permission");
        view.allow_until(None);
        assert!(view.read(&req).is_none());
    }
}
