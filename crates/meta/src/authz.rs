//! Who may send which metadata request, by the role and node ids in the
//! sender's certificate (`rpc/src/principal.rs`). Checked before anything
//! else looks at a request, so a refusal changes nothing.
//!
//! [`required_role`] is the one table: every kind of request is named in it
//! (the match is exhaustive, so a new request kind does not compile until it
//! is given a rule). An operator-only request is a [`Rule::Admin`] row there.
//!
//! | request | allowed from |
//! | --- | --- |
//! | Raft batches | metadata servers, only as the id in their certificate |
//! | Register, Heartbeat, RebuildDone, ReleaseDone | data servers, only for ids in their certificate |
//! | ListPgChunks, CheckLive (rebuild, scrub, GC) | data servers, admin |
//! | membership changes, server states (mark down/up), lease expiry, scrub/GC capabilities, layout policies, drain/remove/rebalance of data servers, repair and scrub switches, key rotation (listing, counting and re-wrapping files' wrapped keys) | admin |
//! | status, placement map, statfs | any role |
//! | namespace and chunk requests, shard capabilities (get/put) | clients, admin |

use shardline_crypto::cap_ops;
use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_rpc::{Principal, Role};
use shardline_types::ErrorCode;

use crate::namespace::OpError;

/// Who may send a kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Metadata servers only, as the id the batch names (`from`).
    MetaPeer { from: u64 },
    /// Data servers only, for an id their certificate holds; `what` names
    /// the request in a refusal.
    DataServer { id: u64, what: &'static str },
    /// Data servers (rebuild, scrub, GC) and operators.
    DataServerOrAdmin,
    /// Operators only; `what` names the operation in a refusal.
    Admin { what: &'static str },
    /// Any certificate of the cluster.
    AnyRole,
    /// Clients and operators (the namespace and its shards).
    ClientOrAdmin,
}

/// The rule for `body`: the table of who may send what. Add an operator
/// request here as a `Rule::Admin` row.
pub fn required_role(body: &Body) -> Rule {
    match body {
        Body::Raft(batch) => Rule::MetaPeer { from: batch.from },
        Body::Register(r) => Rule::DataServer { id: r.id, what: "registration" },
        Body::Heartbeat(h) => Rule::DataServer { id: h.id, what: "a heartbeat" },
        Body::RebuildDone(d) => Rule::DataServer { id: d.server, what: "a rebuild report" },
        Body::ReleaseDone(d) => Rule::DataServer { id: d.server, what: "a release report" },
        Body::ListPgChunks(_) | Body::CheckLive(_) => Rule::DataServerOrAdmin,
        // Operator requests.
        Body::MetaMembership(_) => Rule::Admin { what: "a membership change" },
        Body::SetServerState(_) => Rule::Admin { what: "a server state change (mark down or up)" },
        Body::ExpireClients(_) => Rule::Admin { what: "expiring client leases" },
        Body::GrantAdminCap(_) => Rule::Admin { what: "a cluster-wide scrub or GC capability" },
        Body::SetLayout(_) => Rule::Admin { what: "setting a directory's layout policy" },
        Body::DrainDataServer(_) => Rule::Admin { what: "draining a data server" },
        Body::RemoveDataServer(_) => Rule::Admin { what: "removing a data server" },
        Body::Rebalance(_) => Rule::Admin { what: "a rebalance" },
        Body::SetRepair(_) => Rule::Admin { what: "stopping or starting repair" },
        Body::SetScrub(_) => Rule::Admin { what: "stopping or starting scrub" },
        Body::ListFileKeys(_) | Body::CountFileKeys(_) => Rule::Admin { what: "listing files' wrapped keys" },
        Body::RewrapKey(_) => Rule::Admin { what: "re-wrapping a file's key" },
        Body::GrantCaps(g) if g.ops & (cap_ops::SCRUB | cap_ops::GC) != 0 => {
            Rule::Admin { what: "a scrub or GC capability" }
        }
        Body::Status(_) | Body::GetPlacement(_) | Body::Statfs(_) => Rule::AnyRole,
        Body::GrantCaps(_)
        | Body::Lookup(_)
        | Body::Getattr(_)
        | Body::Readdir(_)
        | Body::Create(_)
        | Body::Mkdir(_)
        | Body::Unlink(_)
        | Body::Rmdir(_)
        | Body::GetChunks(_)
        | Body::CommitChunk(_)
        | Body::Rename(_)
        | Body::SetAttr(_)
        | Body::Link(_)
        | Body::Symlink(_)
        | Body::Readlink(_)
        | Body::SetXattr(_)
        | Body::GetXattr(_)
        | Body::ListXattr(_)
        | Body::RemoveXattr(_)
        | Body::Open(_)
        | Body::Release(_)
        | Body::Mknod(_)
        | Body::CacheWatch(_) => Rule::ClientOrAdmin,
    }
}

/// Whether `body` is an operator-only request.
pub fn is_admin_only(body: &Body) -> bool {
    matches!(required_role(body), Rule::Admin { .. })
}

/// Ok when `peer` may send `req`; otherwise a PERMISSION_DENIED saying why.
pub fn authorize(peer: &Principal, req: &pb::MetaRequest) -> Result<(), OpError> {
    let Some(body) = req.body.as_ref() else { return Ok(()) };
    let deny = |why: String| Err(OpError::new(ErrorCode::PermissionDenied, why));
    let roles = |allowed: &[Role], what: &str| {
        if allowed.contains(&peer.role) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        deny(format!("{what} needs the {} role; this certificate is {}", names.join(" or "), peer.role))
    };
    match required_role(body) {
        Rule::MetaPeer { from } => {
            if !peer.is(Role::Meta) {
                return deny(format!(
                    "raft messages are accepted only from metadata servers, not from a {} certificate",
                    peer.role
                ));
            }
            if !peer.holds_id(from) {
                return deny(format!(
                    "raft messages from {from} sent with the certificate of metadata server {:?}",
                    peer.ids
                ));
            }
            Ok(())
        }
        Rule::DataServer { id, what } => {
            if !peer.is(Role::Data) {
                return deny(format!(
                    "{what} is accepted only from data servers, not from a {} certificate",
                    peer.role
                ));
            }
            if !peer.holds_id(id) {
                return deny(format!(
                    "{what} for data server {id} sent with the certificate of data server(s) {:?}",
                    peer.ids
                ));
            }
            Ok(())
        }
        Rule::DataServerOrAdmin => roles(&[Role::Data, Role::Admin], "this request"),
        Rule::Admin { what } => roles(&[Role::Admin], what),
        Rule::AnyRole => Ok(()),
        Rule::ClientOrAdmin => roles(&[Role::Client, Role::Admin], "a namespace request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(role: Role, ids: &[u64]) -> Principal {
        Principal { role, ids: ids.to_vec(), name: "t".into(), user: Default::default() }
    }

    fn req(body: Body) -> pb::MetaRequest {
        pb::MetaRequest { client_id: 1, request_id: 1, caller: None, cache: false, body: Some(body) }
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
    fn every_operator_request_is_in_the_admin_table_and_refused_to_others() {
        let admin_ops = [
            Body::MetaMembership(pb::MetaMembershipChange { id: 4, addr: "x".into(), remove: true }),
            Body::SetServerState(pb::SetServerState { down: vec![1], up: vec![] }),
            Body::ExpireClients(pb::ExpireClients::default()),
            Body::GrantAdminCap(pb::GrantAdminCap { ops: cap_ops::GC }),
            Body::GrantAdminCap(pb::GrantAdminCap { ops: cap_ops::SCRUB }),
            Body::SetLayout(pb::SetLayout { ino: 1, layout: None }),
            Body::GrantCaps(pb::GrantCaps { ino: 2, ops: cap_ops::GC | cap_ops::GET, chunks: vec![] }),
            Body::ListFileKeys(pb::ListFileKeys::default()),
            Body::CountFileKeys(pb::CountFileKeys {}),
            Body::RewrapKey(pb::RewrapKey::default()),
        ];
        for body in admin_ops {
            assert!(is_admin_only(&body), "{body:?}");
            assert!(!denied(&peer(Role::Admin, &[]), body.clone()), "{body:?}");
            for role in [Role::Client, Role::Data, Role::Meta] {
                let err = authorize(&peer(role, &[1]), &req(body.clone())).expect_err("refused");
                assert!(err.message.contains("needs the admin role"), "{role}: {}", err.message);
            }
        }
    }

    #[test]
    fn shard_grants_only_for_clients_and_admin() {
        for ops in [cap_ops::GET, cap_ops::PUT] {
            let grant = || Body::GrantCaps(pb::GrantCaps { ino: 2, ops, chunks: vec![] });
            assert!(!is_admin_only(&grant()));
            assert!(!denied(&peer(Role::Client, &[]), grant()));
            assert!(!denied(&peer(Role::Admin, &[]), grant()));
            assert!(denied(&peer(Role::Data, &[1]), grant()));
            assert!(denied(&peer(Role::Meta, &[1]), grant()));
        }
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
