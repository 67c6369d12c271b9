//! The POSIX identity a request acts as, taken from the sender's
//! certificate rather than from the request (issue 12 item 3, in part).
//!
//! A client certificate may bind a uid and gid (`shardline://user/UID/GID`)
//! and/or squash root (`shardline://option/root-squash`), see
//! `rpc/src/principal.rs`. Before a request is proposed to the log, this
//! module rewrites the owner it carries (create, mkdir, symlink, mknod) to
//! the identity the certificate allows, strips setuid/setgid bits from
//! modes a squashed certificate sets, and refuses owner changes to ids the
//! certificate does not hold (only root changes a file's owner, and a
//! restricted certificate is never an unrestricted root).
//!
//! A client certificate without a uid mapping acts as the user its request
//! claims (`perm.rs`, [`crate::perm::caller_of`]): a new inode is owned by
//! that uid (and by the request's gid only when the caller is in that group,
//! else by the caller's gid), as a kernel would own it; a caller acting as
//! root (not squashed) keeps the request's ids. Operators keep the
//! request's ids.
//!
//! Permission checks of the namespace itself (mode bits against the acting
//! uid, the subtree restriction) are `perm.rs`, run by the state machine.

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_rpc::UserMap;
use shardline_types::ErrorCode;

use crate::namespace::OpError;

/// setuid and setgid.
const SET_ID_BITS: u32 = 0o6000;

/// Rewrite `req` to act as `user` allows (and, for a certificate without
/// a uid mapping, as the caller the service attached); Err
/// (PERMISSION_DENIED) for an owner change it does not allow. Nothing is
/// changed for an operator's or a root caller's request.
pub fn apply(user: &UserMap, req: &mut pb::MetaRequest) -> Result<(), OpError> {
    if user.ids.is_none() {
        if let Some(c) = req.caller.clone() {
            own_as_caller(&c, req);
        }
    }
    if !user.is_restricted() {
        return Ok(());
    }
    let strip = |mode: &mut u32| {
        if user.root_squash {
            *mode &= !SET_ID_BITS;
        }
    };
    let own = |uid: &mut u32, gid: &mut u32, mode: &mut u32| {
        (*uid, *gid) = user.effective(*uid, *gid);
        strip(mode);
    };
    match req.body.as_mut() {
        Some(Body::Create(c)) => own(&mut c.uid, &mut c.gid, &mut c.mode),
        Some(Body::Mkdir(m)) => own(&mut m.uid, &mut m.gid, &mut m.mode),
        Some(Body::Symlink(l)) => own(&mut l.uid, &mut l.gid, &mut l.mode),
        Some(Body::Mknod(n)) => own(&mut n.uid, &mut n.gid, &mut n.mode),
        Some(Body::SetAttr(a)) => {
            if let Some(mode) = a.mode.as_mut() {
                strip(mode);
            }
            chown_allowed(user, a.uid, a.gid)?;
        }
        _ => {}
    }
    Ok(())
}

/// New inodes of an unmapped certificate's request belong to the user it
/// acts as (root keeps the request's ids).
fn own_as_caller(c: &pb::Caller, req: &mut pb::MetaRequest) {
    let Some(uid) = c.uid.filter(|&u| u != 0) else { return };
    let own = |u: &mut u32, g: &mut u32| {
        *u = uid;
        if *g != c.gid && !c.groups.contains(g) {
            *g = c.gid;
        }
    };
    match req.body.as_mut() {
        Some(Body::Create(x)) => own(&mut x.uid, &mut x.gid),
        Some(Body::Mkdir(x)) => own(&mut x.uid, &mut x.gid),
        Some(Body::Symlink(x)) => own(&mut x.uid, &mut x.gid),
        Some(Body::Mknod(x)) => own(&mut x.uid, &mut x.gid),
        _ => {}
    }
}

/// A restricted certificate may "change" the owner only to the ids it acts
/// as (a no-op chown, or a chgrp to its own gid); a root-squashed one
/// without fixed ids may change neither.
fn chown_allowed(user: &UserMap, uid: Option<u32>, gid: Option<u32>) -> Result<(), OpError> {
    let deny = |what: &str, id: u32| {
        Err(OpError::new(
            ErrorCode::PermissionDenied,
            format!("this certificate may not set a file's {what} to {id} (it acts as {})", acting(user)),
        ))
    };
    if let Some(uid) = uid {
        if user.ids.map(|(u, _)| u) != Some(uid) || uid == 0 && user.root_squash {
            return deny("owner", uid);
        }
    }
    if let Some(gid) = gid {
        if user.ids.map(|(_, g)| g) != Some(gid) || gid == 0 && user.root_squash {
            return deny("group", gid);
        }
    }
    Ok(())
}

fn acting(user: &UserMap) -> String {
    match (user.ids, user.root_squash) {
        (Some((u, g)), false) => format!("uid {u}, gid {g}"),
        (Some((u, g)), true) => format!("uid {u}, gid {g}, root squashed"),
        (None, _) => "any uid but root (squashed)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_rpc::principal::NOBODY;

    fn req(body: Body) -> pb::MetaRequest {
        pb::MetaRequest { client_id: 1, request_id: 1, caller: None, cache: false, body: Some(body) }
    }

    fn create(uid: u32, gid: u32, mode: u32) -> pb::MetaRequest {
        req(Body::Create(pb::Create { parent: 1, name: b"f".to_vec(), mode, uid, gid, ..Default::default() }))
    }

    fn created(r: &pb::MetaRequest) -> (u32, u32, u32) {
        let Some(Body::Create(c)) = &r.body else { panic!("create") };
        (c.uid, c.gid, c.mode)
    }

    #[test]
    fn a_squashed_root_creates_as_nobody_without_setuid() {
        let squash = UserMap { root_squash: true, ..Default::default() };
        let mut r = create(0, 0, 0o104755);
        apply(&squash, &mut r).unwrap();
        assert_eq!(created(&r), (NOBODY, NOBODY, 0o100755));
        // Another uid keeps its ids, but not the set-id bits.
        let mut r = create(1000, 100, 0o102755);
        apply(&squash, &mut r).unwrap();
        assert_eq!(created(&r), (1000, 100, 0o100755));
        let mut chmod = req(Body::SetAttr(pb::SetAttr { ino: 5, mode: Some(0o4755), ..Default::default() }));
        apply(&squash, &mut chmod).unwrap();
        let Some(Body::SetAttr(a)) = &chmod.body else { panic!() };
        assert_eq!(a.mode, Some(0o755));
    }

    #[test]
    fn a_mapped_certificate_acts_as_its_own_ids_only() {
        let alice = UserMap { ids: Some((1000, 100)), ..Default::default() };
        let mut r = create(0, 0, 0o100644);
        apply(&alice, &mut r).unwrap();
        assert_eq!(created(&r), (1000, 100, 0o100644), "the certificate's ids, not the request's");
        let chown = |uid, gid| req(Body::SetAttr(pb::SetAttr { ino: 5, uid, gid, ..Default::default() }));
        apply(&alice, &mut chown(Some(1000), Some(100))).unwrap();
        for (uid, gid) in [(Some(0), None), (Some(1001), None), (None, Some(0))] {
            let e = apply(&alice, &mut chown(uid, gid)).unwrap_err();
            assert_eq!(e.code, ErrorCode::PermissionDenied);
            assert!(e.message.contains("acts as uid 1000"), "{}", e.message);
        }
        let squash = UserMap { root_squash: true, ..Default::default() };
        assert!(apply(&squash, &mut chown(Some(0), None)).is_err());
    }

    #[test]
    fn an_unmapped_certificate_owns_new_inodes_by_the_user_it_acts_as() {
        let acting = |uid, gid, groups: &[u32], mut r: pb::MetaRequest| {
            r.caller = Some(pb::Caller { uid: Some(uid), gid, groups: groups.to_vec(), subtree: vec![] });
            apply(&UserMap::default(), &mut r).unwrap();
            created(&r)
        };
        assert_eq!(acting(1000, 100, &[], create(0, 0, 0o100644)), (1000, 100, 0o100644));
        assert_eq!(acting(1000, 100, &[7], create(0, 7, 0o100644)), (1000, 7, 0o100644), "a group it is in");
        assert_eq!(acting(0, 0, &[], create(1000, 5, 0o100644)), (1000, 5, 0o100644), "root keeps the request's");
    }

    #[test]
    fn an_unrestricted_certificate_changes_nothing() {
        let mut r = create(0, 0, 0o104755);
        let before = r.clone();
        apply(&UserMap::default(), &mut r).unwrap();
        assert_eq!(r, before);
    }
}
