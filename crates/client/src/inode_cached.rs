//! The inode API's reads through the coherent metadata cache
//! (`meta_cache.rs`, docs/metadata-cache.md): lookups and stats answered
//! from memory while granted, granted answers kept, and this client's own
//! changes applied to the cache from their answers. [`Coverage`] tells the
//! mount how long the kernel may keep an answer.

use std::time::Instant;

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_rpc::{code_from_wire, MetaCallError};

use crate::client::{attr_of, Inner};
use crate::inode_api::{InodeAttr, Inodes};
use crate::meta_cache::Coverage;
use crate::ClientError;

/// Whether `body` changes entries or attributes (Open and Release do not).
pub(crate) fn is_change(body: &Body) -> bool {
    matches!(
        body,
        Body::Create(_)
            | Body::Mkdir(_)
            | Body::Mknod(_)
            | Body::Symlink(_)
            | Body::Link(_)
            | Body::Unlink(_)
            | Body::Rmdir(_)
            | Body::Rename(_)
            | Body::SetAttr(_)
            | Body::SetXattr(_)
            | Body::RemoveXattr(_)
            | Body::SetLayout(_)
            | Body::CommitChunk(_)
    )
}

/// An entry a change makes (true) or removes (false): (directory, name, made).
type NamedEntry = (u64, Vec<u8>, bool);

/// The inodes a change names (the answer adds those it resolved by name)
/// and the entry it makes or removes.
fn named(body: &Body) -> (Vec<u64>, Option<NamedEntry>) {
    match body {
        Body::Create(c) => (vec![c.parent], Some((c.parent, c.name.clone(), true))),
        Body::Mkdir(c) => (vec![c.parent], Some((c.parent, c.name.clone(), true))),
        Body::Mknod(c) => (vec![c.parent], Some((c.parent, c.name.clone(), true))),
        Body::Symlink(c) => (vec![c.parent], Some((c.parent, c.name.clone(), true))),
        Body::Link(c) => (vec![c.ino, c.new_parent], Some((c.new_parent, c.new_name.clone(), true))),
        Body::Unlink(c) => (vec![c.parent], Some((c.parent, c.name.clone(), false))),
        Body::Rmdir(c) => (vec![c.parent], Some((c.parent, c.name.clone(), false))),
        // The entries come from the answer: a rename between two links to
        // one inode leaves both names in place (POSIX), and then the
        // answer names no moved inode.
        Body::Rename(c) => (vec![c.parent, c.new_parent], None),
        Body::SetAttr(c) => (vec![c.ino], None),
        Body::SetXattr(c) => (vec![c.ino], None),
        Body::RemoveXattr(c) => (vec![c.ino], None),
        Body::SetLayout(c) => (vec![c.ino], None),
        Body::CommitChunk(c) => (vec![c.ino], None),
        _ => (Vec::new(), None),
    }
}

/// The service's error in an answer as a client error.
fn error_of(resp: &pb::MetaResponse) -> Option<ClientError> {
    let e = resp.error.as_ref()?;
    Some(MetaCallError::Service { code: code_from_wire(e.code), message: e.message.clone() }.into())
}

fn not_found() -> ClientError {
    let message = "no such entry".to_string();
    MetaCallError::Service { code: shardline_types::ErrorCode::NotFound, message }.into()
}

fn is_not_found(resp: &pb::MetaResponse) -> bool {
    resp.error.as_ref().is_some_and(|e| e.code == pb::ErrorCode::NotFound as i32)
}

impl Inner {
    /// Send a change of `ino` this client's cache does not learn from
    /// (a commit): as its own, so the leader does not recall this client's
    /// copies; the cache forgets `ino` instead.
    pub(crate) async fn send_own_change(&self, ino: u64, body: Body) -> Result<pb::MetaResponse, MetaCallError> {
        let sent = self.meta.call_cached(body, self.mcache.open()).await;
        self.mcache.changed_at([ino], sent.as_ref().map_or(0, |r| r.grant_seq));
        let resp = sent?;
        match resp.error.as_ref() {
            Some(e) => Err(MetaCallError::Service { code: code_from_wire(e.code), message: e.message.clone() }),
            None => Ok(resp),
        }
    }
}

impl Inodes {
    fn caller_key(&self) -> u64 {
        self.inner.meta.caller_key()
    }

    /// Whether the caller may look names up in directory `a` (search
    /// permission), as far as this client can tell; else a name not there
    /// is not simply absent for it.
    fn may_search(&self, a: &pb::Attr) -> bool {
        let c = self.inner.meta.acting_caller();
        match c.uid {
            Some(0) => true,
            Some(uid) if uid == a.uid => a.mode & 0o100 != 0,
            _ => a.mode & 0o001 != 0 && a.mode & 0o010 != 0,
        }
    }

    /// Whether caching is off (the kernel's usual TTLs apply).
    pub fn cache_off(&self) -> bool {
        self.inner.mcache.uncovered() == Coverage::Inactive
    }

    /// `parent/name`, and how long the kernel may keep it.
    pub async fn lookup_covered(&self, parent: u64, name: &[u8]) -> Result<(InodeAttr, Coverage), ClientError> {
        let caller = self.caller_key();
        let cache = &self.inner.mcache;
        match cache.entry(parent, name, caller) {
            Some((Some(a), until)) => return Ok((InodeAttr::from_wire(&a), Coverage::Until(until))),
            Some((None, _)) => return Err(not_found()),
            None => {}
        }
        if cache.open() {
            self.list_ahead(parent, name).await;
            if let Some((found, until)) = cache.entry(parent, name, caller) {
                return match found {
                    Some(a) => Ok((InodeAttr::from_wire(&a), Coverage::Until(until))),
                    None => Err(not_found()),
                };
            }
        }
        let ticket = cache.ticket();
        let body = Body::Lookup(pb::Lookup { parent, name: name.to_vec() });
        let resp = self.inner.meta.call_cached(body, ticket.is_some()).await?;
        if is_not_found(&resp) {
            cache.keep(ticket, &resp, caller, &[], &[(parent, name, None)]);
        }
        if let Some(e) = error_of(&resp) {
            return Err(e);
        }
        let a = attr_of(self.received(resp.clone()))?;
        let cov = cache.keep(ticket, &resp, caller, &[&a], &[(parent, name, Some(a.ino))]);
        if ticket.is_some() {
            self.found_by_lookup(parent);
        }
        Ok((InodeAttr::from_wire(&a), cov))
    }

    /// `ino`'s attributes, and how long the kernel may keep them.
    pub async fn getattr_covered(&self, ino: u64) -> Result<(InodeAttr, Coverage), ClientError> {
        let caller = self.caller_key();
        let cache = &self.inner.mcache;
        if let Some((a, until)) = cache.attr(ino, caller) {
            return Ok((InodeAttr::from_wire(&a), Coverage::Until(until)));
        }
        let ticket = cache.ticket();
        let resp = self.inner.meta.call_cached(Body::Getattr(pb::GetAttr { ino }), ticket.is_some()).await?;
        if let Some(e) = error_of(&resp) {
            return Err(e);
        }
        let a = attr_of(self.received(resp.clone()))?;
        let cov = cache.keep(ticket, &resp, caller, &[&a], &[]);
        Ok((InodeAttr::from_wire(&a), cov))
    }

    /// How long the kernel may keep `ino`'s attributes as cached now.
    pub fn attr_coverage(&self, ino: u64) -> Coverage {
        match self.inner.mcache.attr_until(ino, self.caller_key()) {
            Some(until) => Coverage::Until(until),
            None => self.inner.mcache.uncovered(),
        }
    }

    /// The entry `parent/name` → `ino` with its attributes as cached now,
    /// and until when (not counted as a lookup).
    pub fn entry_cached(&self, parent: u64, name: &[u8], ino: u64) -> Option<(InodeAttr, Instant)> {
        self.inner.mcache.entry_until(parent, name, ino, self.caller_key(), InodeAttr::from_wire)
    }

    /// [`Inodes::entry_cached`] for many entries of `parent` (name and
    /// inode each), in order: one lock of the cache, one caller key.
    pub fn entries_cached(&self, parent: u64, items: &[(&[u8], u64)]) -> Vec<Option<(InodeAttr, Instant)>> {
        self.inner.mcache.entries_until(parent, items, self.caller_key(), InodeAttr::from_wire)
    }

    /// `ino`'s extended attribute names through the cache (asked for and
    /// kept when granted).
    pub(crate) async fn listxattr_cached(&self, ino: u64) -> Result<Vec<Vec<u8>>, ClientError> {
        let (caller, cache) = (self.caller_key(), &self.inner.mcache);
        if let Some(names) = cache.xattr_names(ino, caller) {
            return Ok(names);
        }
        let ticket = cache.ticket();
        let resp = self.inner.meta.call_cached(Body::ListXattr(pb::ListXattr { ino }), ticket.is_some()).await?;
        if let Some(e) = error_of(&resp) {
            return Err(e);
        }
        cache.keep_xattr_names(ticket, &resp, caller, ino);
        match self.received(resp).body {
            Some(RBody::XattrNames(n)) => Ok(n.names),
            _ => Err(crate::client::unexpected()),
        }
    }

    /// Whether the cache holds `ino`'s attributes for this caller and they
    /// say it has no extended attributes (a listing's entries come so:
    /// `ls -l` then asks for two per entry, answered here).
    pub(crate) fn known_without_xattrs(&self, ino: u64) -> bool {
        self.inner.mcache.attr(ino, self.caller_key()).is_some_and(|(a, _)| a.no_xattrs)
    }

    /// `ino`'s extended attribute names when the cache holds or can be
    /// granted them (None: caching is off or no session, ask for the value).
    pub(crate) async fn xattr_names_cached(&self, ino: u64) -> Option<Vec<Vec<u8>>> {
        if !self.inner.mcache.open() {
            return None;
        }
        self.listxattr_cached(ino).await.ok()
    }

    /// A page of a directory; with attributes, kept when granted.
    pub(crate) async fn readdir_cached(&self, req: pb::ReadDir) -> Result<pb::MetaResponse, ClientError> {
        let (caller, cache) = (self.caller_key(), &self.inner.mcache);
        let ticket = cache.ticket().filter(|_| req.with_attrs);
        let (dir, after) = (req.ino, req.after.clone());
        let resp = self.inner.meta.call_cached(Body::Readdir(req), ticket.is_some()).await?;
        if let Some(e) = error_of(&resp) {
            return Err(e);
        }
        if let (Some(RBody::Entries(page)), Some(_)) = (&resp.body, ticket) {
            let attrs: Vec<&pb::Attr> = page.entries.iter().filter_map(|e| e.attr.as_ref()).collect();
            let entries: Vec<(u64, &[u8], Option<u64>)> =
                page.entries.iter().filter(|e| e.attr.is_some()).map(|e| (dir, &e.name[..], Some(e.ino))).collect();
            // Every entry must come with its attributes to count towards a whole listing.
            if attrs.len() == page.entries.len() {
                let last = page.entries.last().map_or(&after[..], |e| &e.name[..]);
                cache.listed(ticket, &resp, caller, dir, (&after, last, page.more), &attrs, &entries);
            }
        }
        Ok(self.received(resp))
    }

    /// Send a change: the cache forgets what it touched, then keeps what
    /// its granted answer says (the leader recalls other clients' copies,
    /// never this one's).
    pub(crate) async fn send_change(&self, body: Body) -> Result<pb::MetaResponse, MetaCallError> {
        let (inos, entry) = named(&body);
        let moved = match &body {
            Body::Rename(r) => Some(r.clone()),
            _ => None,
        };
        let cache = &self.inner.mcache;
        let caller = self.caller_key();
        let flagged = cache.open();
        let result = self.inner.meta.call_cached(body, flagged).await;
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                cache.changed(inos);
                return Err(e);
            }
        };
        let touched: Vec<u64> = inos.into_iter().chain(resp.touched.iter().copied()).collect();
        if let Some(e) = resp.error.as_ref() {
            cache.changed(touched);
            return Err(MetaCallError::Service { code: code_from_wire(e.code), message: e.message.clone() });
        }
        let answered = match resp.body.as_ref() {
            Some(RBody::Attr(a)) => Some(a),
            Some(RBody::AttrReleased(r)) => r.attr.as_ref(),
            // A rename's moved inode: its old name is gone (servers send it only then).
            Some(RBody::Released(r)) if moved.is_some() => r.attr.as_ref(),
            _ => None,
        };
        let attrs: Vec<&pb::Attr> = resp.dirs.iter().chain(answered).collect();
        let deltas: Vec<(u64, &[u8], Option<u64>)> = match (&entry, answered, &moved) {
            (Some((dir, name, true)), Some(a), _) => vec![(*dir, &name[..], Some(a.ino))],
            (Some((dir, name, false)), _, _) => vec![(*dir, &name[..], None)],
            (None, Some(a), Some(m)) => {
                vec![(m.parent, &m.name[..], None), (m.new_parent, &m.new_name[..], Some(a.ino))]
            }
            _ => Vec::new(),
        };
        // A directory it made is empty: complete, if the caller may search it.
        let new_dir = answered
            .filter(|a| a.kind == pb::FileKind::Directory as i32 && self.may_search(a))
            .filter(|_| matches!(entry, Some((_, _, true))))
            .map(|a| a.ino);
        cache.own_change(&resp, caller, &touched, &deltas, &attrs, new_dir);
        Ok(resp)
    }
}
