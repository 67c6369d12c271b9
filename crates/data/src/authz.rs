//! Who may send which data-server request, by the role in the sender's
//! certificate (`rpc/src/principal.rs`). Checked before the request runs,
//! so a refusal changes nothing.
//!
//! | request | allowed from |
//! | --- | --- |
//! | shard put, get, delete | clients, admin, data servers (rebuild reads peers) |
//! | scrub, garbage collection | admin |

use shardline_rpc::{Principal, Role};

use crate::DataError;

/// What a request does, for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading, writing or deleting one shard.
    Shard,
    /// Scrub or garbage collection over the whole server.
    Maintenance,
}

/// Ok when `peer` may make a request of kind `access`.
pub fn authorize(peer: &Principal, access: Access) -> Result<(), DataError> {
    let allowed: &[Role] = match access {
        Access::Shard => &[Role::Client, Role::Admin, Role::Data],
        Access::Maintenance => &[Role::Admin],
    };
    if allowed.contains(&peer.role) {
        return Ok(());
    }
    Err(DataError::PermissionDenied(match access {
        Access::Shard => format!("shard requests are not accepted from a {} certificate", peer.role),
        Access::Maintenance => {
            format!("scrub and garbage collection need the admin role; this certificate is {}", peer.role)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_needs_admin_and_shards_need_no_metadata_server() {
        let p = |role| Principal { role, ids: vec![], name: String::new(), user: Default::default() };
        assert!(authorize(&p(Role::Admin), Access::Maintenance).is_ok());
        for role in [Role::Client, Role::Data, Role::Meta] {
            let e = authorize(&p(role), Access::Maintenance).unwrap_err();
            assert!(matches!(e, DataError::PermissionDenied(_)), "{role}");
        }
        for role in [Role::Client, Role::Admin, Role::Data] {
            assert!(authorize(&p(role), Access::Shard).is_ok(), "{role}");
        }
        assert!(authorize(&p(Role::Meta), Access::Shard).is_err());
    }
}
