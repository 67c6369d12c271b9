//! Who may send which metadata request, by the role and node ids in the
//! sender's certificate (`rpc/src/principal.rs`). Checked before anything
//! else looks at a request, so a refusal changes nothing.
//!
//! | request | allowed from |
//! | --- | --- |
//! | Raft batches | metadata servers, only as the id in their certificate |
//! | Register, Heartbeat, RebuildDone | data servers, only for ids in their certificate |
//! | ListPgChunks, CheckLive (rebuild, scrub, GC) | data servers, admin |
//! | membership changes, server states, lease expiry | admin |
//! | status, placement map, statfs | any role |
//! | namespace and chunk requests | clients, admin |

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_rpc::{Principal, Role};
use shardline_types::ErrorCode;

use crate::namespace::OpError;

/// Ok when `peer` may send `req`; otherwise a PERMISSION_DENIED saying why.
pub fn authorize(peer: &Principal, req: &pb::MetaRequest) -> Result<(), OpError> {
    let Some(body) = req.body.as_ref() else { return Ok(()) };
    let deny = |why: String| Err(OpError::new(ErrorCode::PermissionDenied, why));
    let as_data_server = |id: u64, what: &str| {
        if !peer.is(Role::Data) {
            return deny(format!("{what} is accepted only from data servers, not from a {} certificate", peer.role));
        }
        if !peer.holds_id(id) {
            return deny(format!(
                "{what} for data server {id} sent with the certificate of data server(s) {:?}",
                peer.ids
            ));
        }
        Ok(())
    };
    let roles = |allowed: &[Role], what: &str| {
        if allowed.contains(&peer.role) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        deny(format!("{what} needs the {} role; this certificate is {}", names.join(" or "), peer.role))
    };
    match body {
        Body::Raft(batch) => {
            if !peer.is(Role::Meta) {
                return deny(format!(
                    "raft messages are accepted only from metadata servers, not from a {} certificate",
                    peer.role
                ));
            }
            if !peer.holds_id(batch.from) {
                return deny(format!(
                    "raft messages from {} sent with the certificate of metadata server {:?}",
                    batch.from, peer.ids
                ));
            }
            Ok(())
        }
        Body::Register(r) => as_data_server(r.id, "registration"),
        Body::Heartbeat(h) => as_data_server(h.id, "a heartbeat"),
        Body::RebuildDone(d) => as_data_server(d.server, "a rebuild report"),
        Body::ListPgChunks(_) | Body::CheckLive(_) => roles(&[Role::Data, Role::Admin], "this request"),
        Body::MetaMembership(_) => roles(&[Role::Admin], "a membership change"),
        Body::SetServerState(_) => roles(&[Role::Admin], "a server state change"),
        Body::ExpireClients(_) => roles(&[Role::Admin], "expiring client leases"),
        Body::Status(_) | Body::GetPlacement(_) | Body::Statfs(_) => Ok(()),
        _ => roles(&[Role::Client, Role::Admin], "a namespace request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(role: Role, ids: &[u64]) -> Principal {
        Principal { role, ids: ids.to_vec(), name: "t".into() }
    }

    fn req(body: Body) -> pb::MetaRequest {
        pb::MetaRequest { client_id: 1, request_id: 1, body: Some(body) }
    }

    fn denied(p: &Principal, body: Body) -> bool {
        match authorize(p, &req(body)) {
            Ok(()) => false,
            Err(e) => {
                assert_eq!(e.code, ErrorCode::PermissionDenied);
                true
            }
        }
    }

    #[test]
    fn raft_only_from_the_metadata_server_named_in_the_certificate() {
        let raft = |from| Body::Raft(pb::RaftBatch { from, messages: vec![], snapshot_part: None });
        assert!(!denied(&peer(Role::Meta, &[2]), raft(2)));
        assert!(denied(&peer(Role::Meta, &[2]), raft(3)));
        for role in [Role::Client, Role::Admin, Role::Data] {
            assert!(denied(&peer(role, &[2]), raft(2)), "{role}");
        }
    }

    #[test]
    fn data_server_requests_only_for_the_ids_in_the_certificate() {
        let reg = |id| Body::Register(pb::RegisterDataServer { id, ..Default::default() });
        let hb = |id| Body::Heartbeat(pb::Heartbeat { id, ..Default::default() });
        let done = |server| Body::RebuildDone(pb::RebuildDone { server, pg: 0, shard_index: 0 });
        let data = peer(Role::Data, &[7, 8]);
        for ok in [reg(7), hb(8), done(7)] {
            assert!(!denied(&data, ok));
        }
        for bad in [reg(9), hb(1), done(2)] {
            assert!(denied(&data, bad));
        }
        for role in [Role::Client, Role::Admin, Role::Meta] {
            assert!(denied(&peer(role, &[7]), reg(7)), "{role}");
        }
    }

    #[test]
    fn admin_operations_need_the_admin_role() {
        let member = || Body::MetaMembership(pb::MetaMembershipChange { id: 4, addr: "x".into(), remove: false });
        let state = || Body::SetServerState(pb::SetServerState { down: vec![1], up: vec![] });
        for role in [Role::Client, Role::Data, Role::Meta] {
            assert!(denied(&peer(role, &[1]), member()), "{role}");
            assert!(denied(&peer(role, &[1]), state()), "{role}");
        }
        assert!(!denied(&peer(Role::Admin, &[]), member()));
        assert!(!denied(&peer(Role::Admin, &[]), state()));
    }

    #[test]
    fn namespace_requests_need_a_client_or_admin() {
        let getattr = || Body::Getattr(pb::GetAttr { ino: 1 });
        assert!(!denied(&peer(Role::Client, &[]), getattr()));
        assert!(!denied(&peer(Role::Admin, &[]), getattr()));
        assert!(denied(&peer(Role::Data, &[1]), getattr()));
        assert!(denied(&peer(Role::Meta, &[1]), getattr()));
        // Everyone may read the status and the placement map.
        for role in Role::ALL {
            assert!(!denied(&peer(role, &[1]), Body::Status(pb::GetStatus {})));
            assert!(!denied(&peer(role, &[1]), Body::GetPlacement(pb::GetPlacement {})));
        }
        assert!(!denied(&peer(Role::Data, &[1]), Body::CheckLive(pb::CheckLive { chunks: vec![] })));
        assert!(denied(&peer(Role::Client, &[]), Body::CheckLive(pb::CheckLive { chunks: vec![] })));
    }
}
