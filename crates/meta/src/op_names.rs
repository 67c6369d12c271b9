//! Names of metadata requests for metrics (`shardline_requests_total{op=…}`):
//! the request kind only, never its content (no file names).

use shardline_proto::v1::meta_request::Body;

/// The request kind's name, or "empty" for a request without a body.
pub(crate) fn op_name(body: Option<&Body>) -> &'static str {
    let Some(body) = body else { return "empty" };
    match body {
        Body::Lookup(_) => "lookup",
        Body::Getattr(_) => "getattr",
        Body::Readdir(_) => "readdir",
        Body::Create(_) => "create",
        Body::Mkdir(_) => "mkdir",
        Body::Unlink(_) => "unlink",
        Body::Rmdir(_) => "rmdir",
        Body::GetChunks(_) => "get_chunks",
        Body::CommitChunk(_) => "commit_chunk",
        Body::GetPlacement(_) => "get_placement",
        Body::Register(_) => "register",
        Body::Heartbeat(_) => "heartbeat",
        Body::Status(_) => "status",
        Body::Raft(_) => "raft",
        Body::Rename(_) => "rename",
        Body::ListPgChunks(_) => "list_pg_chunks",
        Body::RebuildDone(_) => "rebuild_done",
        Body::SetServerState(_) => "set_server_state",
        Body::CheckLive(_) => "check_live",
        Body::SetAttr(_) => "set_attr",
        Body::Link(_) => "link",
        Body::Symlink(_) => "symlink",
        Body::Readlink(_) => "readlink",
        Body::SetXattr(_) => "set_xattr",
        Body::GetXattr(_) => "get_xattr",
        Body::ListXattr(_) => "list_xattr",
        Body::RemoveXattr(_) => "remove_xattr",
        Body::Statfs(_) => "statfs",
        Body::Open(_) => "open",
        Body::Release(_) => "release",
        Body::SetLayout(_) => "set_layout",
        Body::MetaMembership(_) => "meta_membership",
        Body::Mknod(_) => "mknod",
        Body::ExpireClients(_) => "expire_clients",
        Body::GrantCaps(_) => "grant_caps",
        Body::GrantAdminCap(_) => "grant_admin_cap",
        Body::DrainDataServer(_) => "drain_data_server",
        Body::RemoveDataServer(_) => "remove_data_server",
        Body::Rebalance(_) => "rebalance",
        Body::ReleaseDone(_) => "release_done",
        Body::SetRepair(_) => "set_repair",
        Body::SetScrub(_) => "set_scrub",
        Body::ListFileKeys(_) => "list_file_keys",
        Body::RewrapKey(_) => "rewrap_key",
        Body::CountFileKeys(_) => "count_file_keys",
        Body::CacheWatch(_) => "cache_watch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_proto::v1 as pb;

    #[test]
    fn names_are_the_kind_in_snake_case() {
        assert_eq!(op_name(Some(&Body::GetChunks(pb::GetChunks::default()))), "get_chunks");
        assert_eq!(op_name(Some(&Body::Lookup(pb::Lookup::default()))), "lookup");
        assert_eq!(op_name(None), "empty");
    }
}
