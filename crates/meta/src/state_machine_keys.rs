//! The state machine's key-rotation requests (admin only, `authz.rs`):
//! `ListFileKeys` and `CountFileKeys` (queries), `RewrapKey` (a mutation
//! through the Raft log: a compare-and-set of one file's wrapped key). The
//! namespace does the work (`namespace_keys.rs`); this file turns requests
//! into answers. Additive: entries of these kinds are new, so old logs
//! replay unchanged.

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::ErrorCode;

use super::StateMachine;
use crate::namespace::{FileKey, OpError};
use crate::wire::ok;

fn key_to_wire(k: &FileKey) -> pb::WrappedKey {
    pb::WrappedKey {
        kek_id: k.kek_id.clone(),
        kek_version: k.kek_version,
        suite: k.suite,
        wrapped: k.wrapped.clone(),
        format: k.format,
    }
}

fn key_from_wire(k: Option<&pb::WrappedKey>, what: &str) -> Result<FileKey, OpError> {
    crate::wire::key_from_wire(k).ok_or_else(|| OpError::new(ErrorCode::InvalidArgument, format!("missing {what} key")))
}

impl StateMachine {
    pub(super) fn list_file_keys(&self, l: &pb::ListFileKeys) -> pb::MetaResponse {
        let limit = if l.limit == 0 { 1000 } else { l.limit as usize };
        let (page, more) = self.ns.file_keys(l.after_ino, limit);
        let files = page.into_iter().map(|(ino, k)| pb::FileKeyEntry { ino, key: Some(key_to_wire(k)) }).collect();
        ok(RBody::FileKeys(pb::FileKeys { files, more }))
    }

    pub(super) fn count_file_keys(&self) -> pb::MetaResponse {
        let counts: Vec<pb::FileKeyCount> = self
            .ns
            .key_counts()
            .into_iter()
            .map(|((kek_id, kek_version), files)| pb::FileKeyCount { kek_id, kek_version, files })
            .collect();
        let files = counts.iter().map(|c| c.files).sum();
        ok(RBody::FileKeyCounts(pb::FileKeyCounts { counts, files }))
    }

    pub(super) fn apply_rewrap(&mut self, r: &pb::RewrapKey) -> Result<pb::MetaResponse, OpError> {
        let expected = key_from_wire(r.expected.as_ref(), "expected")?;
        let new = key_from_wire(r.key.as_ref(), "new")?;
        self.ns.rewrap_key(r.ino, &expected, new)?;
        Ok(ok(RBody::Empty(pb::Empty {})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::is_mutation;
    use shardline_proto::v1::meta_request::Body;
    use shardline_types::{Layout, ROOT_INO};

    fn wk(version: u32, byte: u8) -> pb::WrappedKey {
        pb::WrappedKey { kek_id: "k".into(), kek_version: version, suite: 1, wrapped: vec![byte; 72], format: 0 }
    }

    fn req(id: u64, body: Body) -> pb::MetaRequest {
        pb::MetaRequest { client_id: 9, request_id: id, body: Some(body), caller: None, cache: false }
    }

    #[test]
    fn rewrap_goes_through_the_log_and_list_and_count_see_it() {
        let mut sm = StateMachine::new(Layout::default(), 16);
        let create = pb::Create {
            parent: ROOT_INO,
            name: b"a".to_vec(),
            mode: 0o644,
            key: Some(wk(1, 1)),
            exclusive: true,
            ..Default::default()
        };
        let created = sm.apply(&req(1, Body::Create(create)), 1);
        let Some(RBody::Attr(attr)) = created.body else { panic!("no attr: {created:?}") };

        let rewrap = Body::RewrapKey(pb::RewrapKey { ino: attr.ino, expected: Some(wk(1, 1)), key: Some(wk(2, 2)) });
        assert!(is_mutation(&rewrap));
        let done = sm.apply(&req(2, rewrap.clone()), 2);
        assert!(done.error.is_none(), "{done:?}");
        // A retry of the same request is answered from the dedup cache.
        assert_eq!(sm.apply(&req(2, rewrap.clone()), 3), done);
        // A new request expecting the old key is refused: the key changed.
        let stale = sm.apply(&req(3, rewrap), 4);
        assert_eq!(stale.error.map(|e| e.code), Some(shardline_rpc::code_to_wire(ErrorCode::StaleEpoch) as i32));

        let listed = sm.read(&req(0, Body::ListFileKeys(pb::ListFileKeys { after_ino: 0, limit: 0 })));
        let Some(RBody::FileKeys(keys)) = listed.body else { panic!("no keys: {listed:?}") };
        assert_eq!(keys.files, vec![pb::FileKeyEntry { ino: attr.ino, key: Some(wk(2, 2)) }]);
        assert!(!keys.more);
        let counted = sm.read(&req(0, Body::CountFileKeys(pb::CountFileKeys {})));
        let Some(RBody::FileKeyCounts(c)) = counted.body else { panic!("no counts: {counted:?}") };
        assert_eq!(c.files, 1);
        assert_eq!(c.counts, vec![pb::FileKeyCount { kek_id: "k".into(), kek_version: 2, files: 1 }]);
    }
}
