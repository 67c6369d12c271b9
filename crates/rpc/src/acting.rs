//! Which user a client's metadata requests act for.
//!
//! Every request a [`crate::MetaClient`] sends names a [`Caller`]: the
//! POSIX identity (uid, gid, supplementary groups) it acts for. The
//! metadata service takes it from the request only for a client
//! certificate without a uid mapping (the AUTH_SYS model: such a
//! certificate is trusted to say which user it acts for, and is checked as
//! that user); a certificate with a mapping replaces it, and operators and
//! servers are not checked (`meta/src/perm.rs`).
//!
//! By default a client acts as its process (effective uid and gid, and
//! supplementary groups). A FUSE mount serves many users: it runs each
//! kernel request inside [`acting_as`] with the requester's ids, and every
//! metadata request made within that future (not in tasks it spawns) claims
//! them.

use std::future::Future;

pub use shardline_proto::v1::Caller;

/// At most this many supplementary groups are claimed (and accepted).
pub const MAX_GROUPS: usize = 256;

tokio::task_local! {
    static ACTING: Caller;
}

/// Run `f` with every metadata request it makes acting for `caller`.
pub async fn acting_as<F: Future>(caller: Caller, f: F) -> F::Output {
    ACTING.scope(caller, f).await
}

/// The identity set by [`acting_as`] around the current task, if any.
pub fn current() -> Option<Caller> {
    ACTING.try_with(Clone::clone).ok()
}

/// A caller of `uid`, `gid` and `groups` (capped at [`MAX_GROUPS`]).
pub fn caller(uid: u32, gid: u32, mut groups: Vec<u32>) -> Caller {
    groups.truncate(MAX_GROUPS);
    Caller { uid: Some(uid), gid, groups, subtree: Vec::new() }
}

/// This process's identity: effective uid and gid, supplementary groups.
pub fn process_caller() -> Caller {
    // SAFETY: geteuid and getegid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut groups = vec![0 as libc::gid_t; MAX_GROUPS];
    // SAFETY: the buffer holds MAX_GROUPS entries, the size passed.
    let n = unsafe { libc::getgroups(MAX_GROUPS as libc::c_int, groups.as_mut_ptr()) };
    // More groups than MAX_GROUPS (or an error): claim none beyond gid.
    groups.truncate(usize::try_from(n).unwrap_or(0));
    caller(uid, gid, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_sets_the_caller_for_its_future_only() {
        assert!(current().is_none());
        let alice = caller(1000, 100, vec![5]);
        let seen = acting_as(alice.clone(), async { current() }).await;
        assert_eq!(seen, Some(alice));
        assert!(current().is_none());
        let me = process_caller();
        // SAFETY: as above.
        assert_eq!(me.uid, Some(unsafe { libc::geteuid() }));
        assert_eq!(caller(1, 1, vec![0; 1000]).groups.len(), MAX_GROUPS);
    }
}
