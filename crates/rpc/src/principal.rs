//! Who is on the other end of a connection: the role (and, for servers, the
//! node ids) that the cluster CA wrote into the peer's certificate.
//!
//! A Shardline certificate names its role in a URI subject alternative name,
//! `shardline://role/<role>[/<id>]`:
//!
//! | certificate of | URI SAN(s) | may |
//! | --- | --- | --- |
//! | a metadata server | `shardline://role/meta/<raft id>` | send Raft messages as that id |
//! | a data server | `shardline://role/data/<id>` (one per target it runs) | register and heartbeat as those ids, read peers' shards to rebuild |
//! | a client | `shardline://role/client` | namespace and shard requests |
//! | an operator | `shardline://role/admin` | everything a client may, plus membership, scrub, GC, server states |
//!
//! A client certificate may also bind the POSIX identity its holder acts as
//! (issue 12 item 3, the CephFS `root_squash` model): [`UserMap`], from
//! `shardline://user/<uid>/<gid>` (every request acts as that uid and gid,
//! whatever it claims) and `shardline://option/root-squash` (uid 0 acts as
//! nobody, 65534:65534, and setuid/setgid bits are stripped). With a uid
//! mapping, the metadata service also enforces POSIX permissions as that
//! uid (`meta/src/perm.rs`), with the supplementary groups of
//! `shardline://groups/<gid>,<gid>...` if the certificate names them.
//! `shardline://path/<a>/<b>` confines the certificate to the subtree
//! `/a/b` (the CephFS `path=` model). Certificates without these URIs are
//! unrestricted, as before.
//!
//! Server certificates also carry the DNS name of their kind
//! ([`Role::server_name`]), which clients check when they dial, so a data
//! server cannot pose as a metadata server.

use std::fmt;

/// The URI scheme and path prefix every role SAN starts with.
pub const ROLE_URI_PREFIX: &str = "shardline://role/";

/// The URI prefix of a client certificate's fixed uid/gid.
pub const USER_URI_PREFIX: &str = "shardline://user/";
/// The URI of a client certificate whose root is squashed.
pub const ROOT_SQUASH_URI: &str = "shardline://option/root-squash";
/// The URI prefix of a client certificate's supplementary groups.
pub const GROUPS_URI_PREFIX: &str = "shardline://groups/";
/// The URI prefix of a client certificate's subtree restriction.
pub const PATH_URI_PREFIX: &str = "shardline://path/";
/// The uid and gid a squashed root acts as (nobody, nogroup).
pub const NOBODY: u32 = 65_534;
/// Most supplementary groups a certificate may name (Linux's NGROUPS_MAX
/// is larger, but a certificate is not the place for thousands).
pub const MAX_GROUPS: usize = 256;

/// The POSIX identity a client certificate may act as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserMap {
    /// Every request acts as this uid and gid, whatever it claims.
    pub ids: Option<(u32, u32)>,
    /// uid 0 acts as [`NOBODY`], and modes lose their setuid/setgid bits.
    pub root_squash: bool,
    /// Supplementary groups for permission checks (only with `ids`).
    pub groups: Vec<u32>,
    /// The subtree every request must stay in, as path components from the
    /// root (None: the whole namespace).
    pub subtree: Option<Vec<String>>,
}

impl UserMap {
    /// Whether requests' owners and modes are rewritten (`meta/src/identity.rs`).
    pub fn is_restricted(&self) -> bool {
        self.ids.is_some() || self.root_squash
    }

    /// Whether the certificate carries any client restriction at all.
    pub fn restricts_anything(&self) -> bool {
        self.is_restricted() || self.subtree.is_some() || !self.groups.is_empty()
    }

    /// The subtree restriction as a path (`/a/b`), None when unrestricted.
    pub fn subtree_path(&self) -> Option<String> {
        self.subtree.as_ref().map(|c| format!("/{}", c.join("/")))
    }

    /// Parse a `--path` value: absolute, components of URI-safe characters,
    /// no `.` or `..`. `/` alone means the whole namespace (None).
    pub fn parse_subtree(path: &str) -> Result<Option<Vec<String>>, String> {
        if !path.starts_with('/') {
            return Err(format!("subtree path {path:?} must be absolute"));
        }
        let comps: Vec<String> = path.split('/').filter(|c| !c.is_empty()).map(String::from).collect();
        for c in &comps {
            let safe = c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b));
            if c == "." || c == ".." || !safe {
                return Err(format!(
                    "subtree path {path:?}: components may hold letters, digits and -._~!$&'()*+,;=:@ only, and not be . or .."
                ));
            }
        }
        Ok((!comps.is_empty()).then_some(comps))
    }

    /// The uid and gid a request claiming `uid`/`gid` acts as.
    pub fn effective(&self, uid: u32, gid: u32) -> (u32, u32) {
        let (uid, gid) = self.ids.unwrap_or((uid, gid));
        if self.root_squash && uid == 0 {
            (NOBODY, NOBODY)
        } else {
            (uid, gid)
        }
    }

    /// The SAN URIs that carry this mapping in a certificate.
    pub fn uris(&self) -> Vec<String> {
        let mut uris: Vec<String> = self.ids.iter().map(|(uid, gid)| format!("{USER_URI_PREFIX}{uid}/{gid}")).collect();
        if self.root_squash {
            uris.push(ROOT_SQUASH_URI.to_string());
        }
        if !self.groups.is_empty() {
            let list: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            uris.push(format!("{GROUPS_URI_PREFIX}{}", list.join(",")));
        }
        if let Some(comps) = &self.subtree {
            uris.push(format!("{PATH_URI_PREFIX}{}", comps.join("/")));
        }
        uris
    }

    fn parse_groups(rest: &str) -> Result<Vec<u32>, String> {
        let bad = || format!("bad group list in {GROUPS_URI_PREFIX}{rest:?} (want GID,GID,...)");
        let groups: Vec<u32> = rest.split(',').map(|g| g.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
        if groups.len() > MAX_GROUPS {
            return Err(format!("a certificate names at most {MAX_GROUPS} supplementary groups"));
        }
        Ok(groups)
    }

    fn parse_user(rest: &str) -> Result<(u32, u32), String> {
        let bad = || format!("bad uid/gid in {USER_URI_PREFIX}{rest:?} (want UID/GID)");
        let (uid, gid) = rest.split_once('/').ok_or_else(bad)?;
        Ok((uid.parse().map_err(|_| bad())?, gid.parse().map_err(|_| bad())?))
    }
}

/// What a certificate entitles its holder to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A metadata server (Raft peer).
    Meta,
    /// A data server.
    Data,
    /// A client (native client, mount, file commands).
    Client,
    /// An operator (`shardline admin`).
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Meta, Role::Data, Role::Client, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Meta => "meta",
            Role::Data => "data",
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether certificates of this role name node ids.
    pub fn has_ids(self) -> bool {
        matches!(self, Role::Meta | Role::Data)
    }

    /// Whether this role serves connections (its certificate is also a
    /// TLS server certificate).
    pub fn is_server(self) -> bool {
        self.has_ids()
    }

    /// The DNS name in a server certificate of this role, checked by
    /// whoever dials it (None for roles that do not serve).
    pub fn server_name(self) -> Option<&'static str> {
        match self {
            Role::Meta => Some("meta.shardline"),
            Role::Data => Some("data.shardline"),
            Role::Client | Role::Admin => None,
        }
    }

    /// The role SAN of a certificate for `id` (ignored by roles without ids).
    pub fn uri(self, id: Option<u64>) -> String {
        match (self.has_ids(), id) {
            (true, Some(id)) => format!("{ROLE_URI_PREFIX}{}/{id}", self.as_str()),
            _ => format!("{ROLE_URI_PREFIX}{}", self.as_str()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated peer of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// Node ids bound to the certificate (metadata and data servers; a data
    /// server running several targets has one per target).
    pub ids: Vec<u64>,
    /// The certificate's common name, for logs.
    pub name: String,
    /// The POSIX identity a client certificate may act as (unrestricted for
    /// every other role).
    pub user: UserMap,
}

impl Principal {
    /// Whether this principal holds `role`.
    pub fn is(&self, role: Role) -> bool {
        self.role == role
    }

    /// Whether `id` is bound to this principal's certificate.
    pub fn holds_id(&self, id: u64) -> bool {
        self.ids.contains(&id)
    }

    /// The principal named by a certificate's role URIs: exactly one role,
    /// with ids for server roles and none for the others.
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>, name: String) -> Result<Principal, String> {
        let mut role = None;
        let mut ids = Vec::new();
        let mut user = UserMap::default();
        for uri in uris {
            if let Some(rest) = uri.strip_prefix(USER_URI_PREFIX) {
                let ids = UserMap::parse_user(rest)?;
                if user.ids.is_some_and(|seen| seen != ids) {
                    return Err("certificate names more than one uid/gid".into());
                }
                user.ids = Some(ids);
                continue;
            }
            if uri == ROOT_SQUASH_URI {
                user.root_squash = true;
                continue;
            }
            if let Some(rest) = uri.strip_prefix(GROUPS_URI_PREFIX) {
                user.groups.extend(UserMap::parse_groups(rest)?);
                continue;
            }
            if let Some(rest) = uri.strip_prefix(PATH_URI_PREFIX) {
                let subtree = UserMap::parse_subtree(&format!("/{rest}"))?;
                if user.subtree.is_some() {
                    return Err("certificate names more than one subtree".into());
                }
                // `shardline://path/` alone restricts nothing.
                user.subtree = subtree;
                continue;
            }
            let Some(rest) = uri.strip_prefix(ROLE_URI_PREFIX) else { continue };
            let (r, id) = match rest.split_once('/') {
                Some((r, id)) => (r, Some(id)),
                None => (rest, None),
            };
            let r = Role::parse(r).ok_or_else(|| format!("unknown role in {uri:?}"))?;
            if role.is_some_and(|seen| seen != r) {
                return Err("certificate names more than one role".into());
            }
            role = Some(r);
            match (r.has_ids(), id) {
                (true, Some(id)) => ids.push(id.parse().map_err(|_| format!("bad node id in {uri:?}"))?),
                (true, None) => return Err(format!("{uri:?} names no node id")),
                (false, Some(_)) => return Err(format!("{uri:?}: role {r} takes no node id")),
                (false, None) => {}
            }
        }
        let role = role.ok_or_else(|| "certificate names no Shardline role (shardline://role/...)".to_string())?;
        if user.restricts_anything() && role != Role::Client {
            return Err(format!("a {role} certificate cannot carry a uid/gid mapping, root squash, groups or a path"));
        }
        if !user.groups.is_empty() && user.ids.is_none() {
            return Err("supplementary groups need a uid/gid mapping (shardline://user/UID/GID)".into());
        }
        user.groups.sort_unstable();
        user.groups.dedup();
        ids.sort_unstable();
        ids.dedup();
        Ok(Principal { role, ids, name, user })
    }

    /// The principal of a DER certificate.
    pub fn from_cert_der(der: &[u8]) -> Result<Principal, String> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("parse certificate: {e}"))?;
        let name =
            cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_string();
        let san = cert.subject_alternative_name().map_err(|e| format!("read subject alternative names: {e}"))?;
        let uris: Vec<&str> = san
            .map(|ext| ext.value.general_names.iter())
            .into_iter()
            .flatten()
            .filter_map(|g| match g {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect();
        Principal::from_uris(uris, name)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ids.as_slice() {
            [] => write!(f, "{} {:?}", self.role, self.name),
            ids => write!(f, "{} {ids:?} {:?}", self.role, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_uris_round_trip() {
        for role in Role::ALL {
            let uri = role.uri(Some(3));
            let p = Principal::from_uris([uri.as_str()], "n".into()).unwrap();
            assert_eq!(p.role, role);
            assert_eq!(p.ids, if role.has_ids() { vec![3] } else { vec![] });
        }
        let p = Principal::from_uris(["shardline://role/data/8", "shardline://role/data/7"], String::new()).unwrap();
        assert_eq!(p.ids, vec![7, 8]);
        assert!(p.holds_id(7) && !p.holds_id(9));
    }

    #[test]
    fn ambiguous_or_missing_roles_are_refused() {
        assert!(Principal::from_uris([], String::new()).unwrap_err().contains("no Shardline role"));
        assert!(Principal::from_uris(["https://example.com"], String::new()).is_err());
        assert!(Principal::from_uris(["shardline://role/meta/1", "shardline://role/admin"], String::new()).is_err());
        assert!(Principal::from_uris(["shardline://role/meta"], String::new()).is_err());
        assert!(Principal::from_uris(["shardline://role/meta/x"], String::new()).is_err());
        assert!(Principal::from_uris(["shardline://role/client/4"], String::new()).is_err());
        assert!(Principal::from_uris(["shardline://role/root"], String::new()).is_err());
    }

    #[test]
    fn client_certificates_may_carry_a_user_mapping_and_root_squash() {
        let p = Principal::from_uris(
            ["shardline://role/client", "shardline://user/1000/100", ROOT_SQUASH_URI],
            String::new(),
        )
        .unwrap();
        assert_eq!(p.user, UserMap { ids: Some((1000, 100)), root_squash: true, ..Default::default() });
        assert_eq!(p.user.effective(0, 0), (1000, 100), "the certificate's ids, not the request's");
        let squash = UserMap { root_squash: true, ..Default::default() };
        assert_eq!(squash.effective(0, 0), (NOBODY, NOBODY));
        assert_eq!(squash.effective(5, 6), (5, 6));
        assert_eq!(UserMap::default().effective(0, 0), (0, 0));
        let mut uris = p.user.uris();
        uris.push(Role::Client.uri(None));
        assert_eq!(Principal::from_uris(uris.iter().map(String::as_str), String::new()).unwrap().user, p.user);
        for bad in [["shardline://role/admin", ROOT_SQUASH_URI], ["shardline://role/client", "shardline://user/x/1"]] {
            assert!(Principal::from_uris(bad, String::new()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn groups_and_subtree_round_trip_and_old_certificates_stay_unrestricted() {
        let user = UserMap {
            ids: Some((1000, 100)),
            groups: vec![20, 30],
            subtree: UserMap::parse_subtree("/a/b").unwrap(),
            ..Default::default()
        };
        let mut uris = user.uris();
        assert!(uris.contains(&"shardline://path/a/b".to_string()), "{uris:?}");
        uris.push(Role::Client.uri(None));
        let p = Principal::from_uris(uris.iter().map(String::as_str), String::new()).unwrap();
        assert_eq!(p.user, user);
        assert_eq!(p.user.subtree_path().as_deref(), Some("/a/b"));
        let path_only = Principal::from_uris(["shardline://role/client", "shardline://path/a"], String::new()).unwrap();
        assert!(path_only.user.restricts_anything() && !path_only.user.is_restricted());
        let old = Principal::from_uris(["shardline://role/client", "shardline://user/5/6"], String::new()).unwrap();
        assert_eq!((old.user.subtree.clone(), old.user.groups.len()), (None, 0));
        assert_eq!(UserMap::parse_subtree("/").unwrap(), None);
        for bad in ["a", "/a/../b", "/a b", "/a%2F"] {
            assert!(UserMap::parse_subtree(bad).is_err(), "{bad}");
        }
        for bad in [
            vec!["shardline://role/admin", "shardline://path/a"],
            vec!["shardline://role/client", "shardline://groups/1,2"],
            vec!["shardline://role/client", "shardline://user/1/1", "shardline://groups/x"],
            vec!["shardline://role/client", "shardline://path/a", "shardline://path/b"],
        ] {
            assert!(Principal::from_uris(bad.clone(), String::new()).is_err(), "{bad:?}");
        }
    }
}
