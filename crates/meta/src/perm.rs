//! POSIX permissions enforced by the metadata service itself, as the
//! identity a client certificate binds (issue 12 item 3), so a modified
//! client cannot bypass what the mount's `default_permissions` and
//! `fuse/src/attr.rs` check on the client side.
//!
//! The service puts a [`pb::Caller`] on every request from a client
//! certificate ([`caller_of`]): the ids the certificate maps
//! (`shardline://user/UID/GID`, squashed as `identity.rs` says), or, for a
//! certificate without a mapping, the ids the request claims (the AUTH_SYS
//! model: trusted to say which user it acts for, checked as that user;
//! nobody when it claims none), with the certificate's subtree
//! (`shardline://path/...`). The state machine checks it against the inode
//! table when it answers a query or applies a log entry (so a check and
//! the change it guards see the same state). Operators and servers carry
//! no caller and keep their rights. The rules, as Linux applies them (uid
//! 0 bypasses the mode bits):
//!
//! | request | needs |
//! | --- | --- |
//! | Lookup | x on the parent |
//! | ReadDir | r on the directory |
//! | Create, Mkdir, Mknod, Symlink | w+x on the parent; devices only as root; Create of an existing name also r or w on it |
//! | Unlink, Rmdir | w+x on the parent, and in a sticky directory: owning the entry or the directory |
//! | Rename | the same on both parents; w on a directory moving to another parent |
//! | Link | w+x on the new parent; owning the file or r+w on it (protected hard links) |
//! | SetAttr | chmod, explicit times, chown: the owner (a real owner change: root); chgrp to a group of the caller's; setgid only in the file's group; a mode that only clears set-id bits (a write's): also w; "now" times: the owner or w; size: w |
//! | SetXattr, RemoveXattr | w (`trusted.*`: root; `system.*`: the owner) |
//! | GetXattr | r for `user.*` (`trusted.*`: root) |
//! | Open, GetChunks | r or w |
//! | GrantCaps | r for get, w (or owning the file) for put |
//! | CommitChunk | w, or owning the file (see `need_data_write`) |
//! | SetLayout | the owner |
//! | GetAttr, Readlink, ListXattr, Release | nothing |
//!
//! Answers lose the file's wrapped key ([`filter_response`]) unless the
//! caller may read or write the file; chunk lists also lose their get
//! capabilities unless it may read. Then the subtree (`perm_scope.rs`).

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::mode::clears_setid_only;
use shardline_types::{ErrorCode, Ino};

use crate::namespace::{Inode, Kind, Namespace, OpError, OpResult};
use crate::perm_scope::Scope;

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;
const STICKY: u32 = 0o1000;
const SETGID: u32 = 0o2000;

/// The identity permission checks run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Who {
    /// The identity of `caller`, None when it carries no uid.
    pub fn of(caller: &pb::Caller) -> Option<Who> {
        caller.uid.map(|uid| Who { uid, gid: caller.gid, groups: caller.groups.clone() })
    }

    fn root(&self) -> bool {
        self.uid == 0
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// access(2) on an inode with `mode`, `uid`, `gid`: every bit of `mask`.
    pub fn may(&self, kind_is_dir: bool, mode: u32, uid: u32, gid: u32, mask: u32) -> bool {
        let mask = mask & 7;
        if self.root() {
            return mask & X == 0 || kind_is_dir || mode & 0o111 != 0;
        }
        let bits = if self.uid == uid {
            (mode >> 6) & 7
        } else if self.in_group(gid) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        bits & mask == mask
    }

    fn may_inode(&self, i: &Inode, mask: u32) -> bool {
        self.may(i.kind == Kind::Directory, i.mode, i.uid, i.gid, mask)
    }

    fn owns(&self, i: &Inode) -> bool {
        self.root() || self.uid == i.uid
    }
}

fn rwx(mask: u32) -> String {
    [(R, 'r'), (W, 'w'), (X, 'x')].iter().filter(|(b, _)| mask & b != 0).map(|(_, c)| *c).collect()
}

fn denied(who: &Who, msg: String) -> OpError {
    OpError::new(ErrorCode::PermissionDenied, format!("permission denied: {msg} (acting as uid {})", who.uid))
}

/// Refuse `body` unless `caller` may make it now (POSIX rules, then the subtree).
pub fn check(ns: &Namespace, caller: &pb::Caller, body: &Body) -> OpResult<()> {
    if let Some(who) = Who::of(caller) {
        check_posix(ns, &who, body)?;
    }
    if !caller.subtree.is_empty() {
        Scope::resolve(ns, &caller.subtree)?.check(ns, body)?;
    }
    Ok(())
}

/// `ino` exists and `who` has every bit of `mask` on it. A missing inode
/// passes: the request then fails with its own NotFound.
fn need<'a>(ns: &'a Namespace, who: &Who, ino: Ino, mask: u32, what: &str) -> OpResult<Option<&'a Inode>> {
    let Ok(inode) = ns.get(ino) else { return Ok(None) };
    if who.may_inode(inode, mask) {
        Ok(Some(inode))
    } else {
        Err(denied(who, format!("{what} needs {} on inode {ino}", rwx(mask))))
    }
}

/// `who` may write `ino`'s data: w, or owning it. POSIX checks w when a
/// file is opened, and the server keeps no open modes: an owner's file
/// created read-only (`open(O_CREAT|O_WRONLY, 0444)`, as tar and cp -p do)
/// or made read-only while open must still take the bytes written through
/// that descriptor. Owning it, the caller could grant itself w anyway.
fn need_data_write(ns: &Namespace, who: &Who, ino: Ino, what: &str) -> OpResult<()> {
    match ns.get(ino) {
        Ok(i) if who.owns(i) => Ok(()),
        _ => need(ns, who, ino, W, what).map(drop),
    }
}

/// `who` has r or w on `ino`, or owns it (a missing inode passes). An owner
/// passes whatever the mode: a descriptor opened before the mode dropped
/// both bits (`open(O_CREAT|O_RDWR, 0)`) may still truncate and write, which
/// needs the chunk list and the key, and the owner could grant itself r.
fn need_any(ns: &Namespace, who: &Who, ino: Ino, what: &str) -> OpResult<()> {
    match ns.get(ino) {
        Ok(i) if !who.owns(i) && !who.may_inode(i, R) && !who.may_inode(i, W) => {
            Err(denied(who, format!("{what} needs r or w on inode {ino}")))
        }
        _ => Ok(()),
    }
}

/// Removing `name` from the sticky directory `dir` needs owning the entry
/// or the directory.
fn sticky(ns: &Namespace, who: &Who, dir: Ino, name: &[u8], what: &str) -> OpResult<()> {
    let (Ok(d), Ok(entry)) = (ns.get(dir), ns.lookup(dir, name)) else { return Ok(()) };
    if d.mode & STICKY != 0 && !who.owns(d) && !who.owns(entry) {
        return Err(denied(who, format!("{what} in sticky directory {dir} needs owning the entry or the directory")));
    }
    Ok(())
}

fn check_posix(ns: &Namespace, who: &Who, body: &Body) -> OpResult<()> {
    match body {
        Body::Lookup(l) => need(ns, who, l.parent, X, "lookup").map(drop),
        Body::Readdir(r) => need(ns, who, r.ino, R, "readdir").map(drop),
        Body::Create(c) => {
            need(ns, who, c.parent, W | X, "create")?;
            match ns.lookup(c.parent, &c.name) {
                Ok(existing) if !c.exclusive => need_any(ns, who, existing.ino, "opening an existing file"),
                _ => Ok(()),
            }
        }
        Body::Mkdir(m) => need(ns, who, m.parent, W | X, "mkdir").map(drop),
        Body::Symlink(s) => need(ns, who, s.parent, W | X, "symlink").map(drop),
        Body::Mknod(n) => {
            let device =
                matches!(pb::FileKind::try_from(n.kind), Ok(pb::FileKind::CharDevice | pb::FileKind::BlockDevice));
            if device && !who.root() {
                return Err(denied(who, "only root makes device nodes".into()));
            }
            need(ns, who, n.parent, W | X, "mknod").map(drop)
        }
        Body::Unlink(u) => {
            need(ns, who, u.parent, W | X, "unlink")?;
            sticky(ns, who, u.parent, &u.name, "unlink")
        }
        Body::Rmdir(r) => {
            need(ns, who, r.parent, W | X, "rmdir")?;
            sticky(ns, who, r.parent, &r.name, "rmdir")
        }
        Body::Rename(r) => {
            need(ns, who, r.parent, W | X, "rename")?;
            need(ns, who, r.new_parent, W | X, "rename")?;
            sticky(ns, who, r.parent, &r.name, "rename")?;
            sticky(ns, who, r.new_parent, &r.new_name, "rename over an entry")?;
            match ns.lookup(r.parent, &r.name) {
                // Its ".." changes.
                Ok(d) if d.kind == Kind::Directory && r.parent != r.new_parent => {
                    need(ns, who, d.ino, W, "moving a directory to another parent").map(drop)
                }
                _ => Ok(()),
            }
        }
        Body::Link(l) => {
            need(ns, who, l.new_parent, W | X, "link")?;
            match ns.get(l.ino) {
                Ok(i) if !who.owns(i) && !who.may_inode(i, R | W) => {
                    Err(denied(who, format!("a hard link to inode {} needs owning it or rw on it", l.ino)))
                }
                _ => Ok(()),
            }
        }
        Body::SetAttr(a) => check_setattr(ns, who, a),
        Body::SetXattr(pb::SetXattr { ino, name, .. }) | Body::RemoveXattr(pb::RemoveXattr { ino, name }) => {
            let Ok(i) = ns.get(*ino) else { return Ok(()) };
            if name.starts_with(b"trusted.") && !who.root() {
                return Err(denied(who, "trusted.* attributes are root's".into()));
            }
            if name.starts_with(b"system.") {
                return if who.owns(i) {
                    Ok(())
                } else {
                    Err(denied(who, format!("system.* attributes of inode {ino} are its owner's")))
                };
            }
            need(ns, who, *ino, W, "setting an attribute").map(drop)
        }
        Body::GetXattr(g) => {
            if g.name.starts_with(b"trusted.") && !who.root() {
                return Err(denied(who, "trusted.* attributes are root's".into()));
            }
            if g.name.starts_with(b"user.") {
                need(ns, who, g.ino, R, "reading an attribute")?;
            }
            Ok(())
        }
        Body::Open(o) => match ns.get(o.ino) {
            Ok(i) if i.kind == Kind::Regular => need_any(ns, who, o.ino, "open"),
            _ => Ok(()),
        },
        Body::GetChunks(g) => need_any(ns, who, g.ino, "reading a chunk list"),
        Body::GrantCaps(g) => {
            use shardline_crypto::cap_ops;
            if g.ops & cap_ops::GET != 0 {
                need(ns, who, g.ino, R, "reading chunks")?;
            }
            if g.ops & !cap_ops::GET != 0 {
                need_data_write(ns, who, g.ino, "writing chunks")?;
            }
            Ok(())
        }
        Body::CommitChunk(c) => need_data_write(ns, who, c.ino, "writing chunks"),
        Body::SetLayout(s) => match ns.get(s.ino) {
            Ok(i) if !who.owns(i) => Err(denied(who, format!("the layout of inode {} is its owner's", s.ino))),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// setattr's ownership rules (as `fuse/src/attr.rs::check_setattr`).
fn check_setattr(ns: &Namespace, who: &Who, a: &pb::SetAttr) -> OpResult<()> {
    let Ok(i) = ns.get(a.ino) else { return Ok(()) };
    let owner = who.owns(i);
    let no = |what: &str| Err(denied(who, format!("{what} of inode {} is its owner's", a.ino)));
    if let Some(mode) = a.mode.filter(|_| !owner) {
        // What the kernel asks, as the writer, when a write or truncate by
        // someone without CAP_FSETID drops the file's set-id bits.
        if !(clears_setid_only(i.mode, mode) && who.may_inode(i, W)) {
            return no("changing the mode");
        }
    } else if let Some(mode) = a.mode.filter(|&m| !clears_setid_only(i.mode, m)) {
        let group = a.gid.unwrap_or(i.gid);
        if mode & SETGID != 0 && i.kind != Kind::Directory && !who.root() && !who.in_group(group) {
            return Err(denied(who, format!("setgid on inode {} needs membership of its group", a.ino)));
        }
    }
    if a.uid.is_some_and(|u| u != i.uid) && !who.root() {
        return Err(denied(who, format!("only root changes the owner of inode {}", a.ino)));
    }
    if a.uid.is_some() && !owner {
        return no("the owner");
    }
    if let Some(gid) = a.gid.filter(|&g| g != i.gid) {
        if !(who.root() || owner && who.in_group(gid)) {
            return Err(denied(who, format!("changing the group of inode {} needs owning it and the group", a.ino)));
        }
    }
    let explicit = a.atime_ns.is_some() || a.mtime_ns.is_some();
    if explicit && !owner {
        return no("setting explicit times");
    }
    if (a.atime_now || a.mtime_now) && !owner && !who.may_inode(i, W) {
        return Err(denied(who, format!("touching inode {} needs owning it or w", a.ino)));
    }
    if a.size.is_some() {
        need_data_write(ns, who, a.ino, "truncate")?;
    }
    Ok(())
}

/// Remove from an answer to `caller` the wrapped keys of files it may
/// neither read nor write, and the chunks' get capabilities of files it
/// may not read. A create's answer keeps its key: the caller made it (or
/// `check` required r or w on the file it found).
pub fn filter_response(caller: Option<&pb::Caller>, body: Option<&Body>, resp: &mut pb::MetaResponse) {
    let Some(who) = caller.and_then(Who::of) else { return };
    if matches!(body, Some(Body::Create(_))) {
        return;
    }
    let may = |a: &pb::Attr, mask: u32| who.may(a.kind == pb::FileKind::Directory as i32, a.mode, a.uid, a.gid, mask);
    let keep = |a: &mut pb::Attr| {
        let owner = who.root() || who.uid == a.uid;
        if a.key.is_some() && !owner && !may(a, R) && !may(a, W) {
            a.key = None;
        }
    };
    match resp.body.as_mut() {
        Some(RBody::Attr(a)) => keep(a),
        Some(RBody::AttrReleased(pb::AttrReleased { attr: Some(a), .. })) => keep(a),
        Some(RBody::Released(pb::Released { attr: Some(a), .. })) => keep(a),
        Some(RBody::Entries(e)) => e.entries.iter_mut().filter_map(|e| e.attr.as_mut()).for_each(keep),
        Some(RBody::Chunks(list)) => {
            if let Some(a) = list.attr.as_mut() {
                if !may(a, R) {
                    list.chunks.iter_mut().for_each(|c| c.cap = None);
                }
                keep(a);
            }
        }
        _ => {}
    }
}

/// The caller a request from a client certificate with `user` acts as,
/// given the caller the request `claimed`:
///
/// - a certificate with a uid mapping: its ids and groups, whatever the
///   request claims;
/// - one without (the AUTH_SYS model): the claimed uid, gid and groups (at
///   most [`shardline_rpc::acting::MAX_GROUPS`]), or nobody when the
///   request claims no uid; root-squashed, uid 0 and gid 0 become nobody
///   and group 0 is dropped;
/// - the subtree always from the certificate.
pub fn caller_of(user: &shardline_rpc::UserMap, claimed: Option<&pb::Caller>) -> pb::Caller {
    use shardline_rpc::principal::NOBODY;
    let (uid, gid, groups) = match user.ids {
        Some((u, g)) => {
            let (u, g) = user.effective(u, g);
            (u, g, user.groups.clone())
        }
        None => {
            let (u, g, mut groups) = match claimed.and_then(|c| c.uid.map(|u| (u, c.gid, c.groups.clone()))) {
                Some(ids) => ids,
                None => (NOBODY, NOBODY, Vec::new()),
            };
            groups.truncate(shardline_rpc::acting::MAX_GROUPS);
            if user.root_squash {
                groups.retain(|&g| g != 0);
                (if u == 0 { NOBODY } else { u }, if g == 0 { NOBODY } else { g }, groups)
            } else {
                (u, g, groups)
            }
        }
    };
    pb::Caller {
        uid: Some(uid),
        gid,
        groups,
        subtree: user.subtree.iter().flatten().map(|c| c.as_bytes().to_vec()).collect(),
    }
}

#[cfg(test)]
#[path = "perm_tests.rs"]
mod tests;
