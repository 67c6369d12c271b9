//! Directory listings for readdir: read from the metadata service a page
//! (1,000 entries with their attributes) at a time as the kernel reaches
//! them, and one page ahead of it in the background, so the kernel and the
//! lister rarely wait for a page: a listing is bound by those waits, not by
//! CPU (docs/performance.md, "What limits `ls -l` now"). At most one page
//! of a listing is in flight; a readdir that needs it waits for it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;
use std::time::Instant;

use shardline_client::inode_api::Inodes;

use crate::attr::file_type;
use crate::fs::{OpResult, ShardlineFs};
use crate::open_files::{DirItem, Listing, Loaded};

/// Entries the servers send per page (their default).
const PAGE: usize = 1_000;

impl ShardlineFs {
    /// A directory's listing with "." and ".." and its first page of
    /// entries, each with its attributes (for READDIRPLUS); readdir reads
    /// the rest as it reaches it ([`ShardlineFs::op_list_more`]).
    pub(crate) async fn op_list_dir(&self, ino: u64) -> OpResult<Arc<Listing>> {
        let taken = Instant::now();
        let dot = |name: &str| DirItem { ino, kind: fuser::FileType::Directory, name: name.into(), attr: None, taken };
        let loaded = Loaded { items: vec![dot("."), dot("..")], after: Vec::new(), more: true, fetching: false };
        let listing = Arc::new(Listing::new(loaded));
        self.op_list_more(ino, &listing, 0).await?;
        Ok(listing)
    }

    /// Read pages of `ino` into `listing` until it holds the item at
    /// `offset` or the directory ends; then start reading the page after
    /// the next one the kernel will need, if it is not there yet.
    pub(crate) async fn op_list_more(&self, ino: u64, listing: &Arc<Listing>, offset: usize) -> OpResult<()> {
        loop {
            let in_flight = {
                let mut loaded = listing.lock();
                if loaded.items.len() > offset || !loaded.more {
                    let ahead = loaded.more && !loaded.fetching && loaded.items.len() < offset + 2 * PAGE;
                    if ahead {
                        loaded.fetching = true;
                        drop(loaded);
                        self.read_ahead(ino, listing.clone());
                    }
                    return Ok(());
                }
                // Registered now: a page that arrives before this is
                // awaited still wakes it.
                let fetched = listing.fetched();
                if !loaded.fetching {
                    loaded.fetching = true;
                    None
                } else {
                    Some(fetched)
                }
            };
            match in_flight {
                Some(fetched) => fetched.await,
                None => fetch_page(&self.inodes, ino, listing).await?,
            }
        }
    }

    /// Read `listing`'s next page in the background, as the caller of the
    /// current request (the metadata cache keeps answers per caller).
    fn read_ahead(&self, ino: u64, listing: Arc<Listing>) {
        let inodes = self.inodes.clone();
        let caller = shardline_rpc::acting::current();
        let fetch = async move {
            // An error here is met again by the readdir that needs the page.
            let _ = fetch_page(&inodes, ino, &listing).await;
        };
        match caller {
            Some(who) => drop(self.rt().spawn(shardline_rpc::acting::acting_as(who, fetch))),
            None => drop(self.rt().spawn(fetch)),
        }
    }
}

/// Read the page after `listing`'s last name into it (its `fetching` set
/// by the caller; cleared here, and every waiter woken, whatever happens).
async fn fetch_page(inodes: &Inodes, ino: u64, listing: &Listing) -> OpResult<()> {
    let after = listing.lock().after.clone();
    let taken = Instant::now();
    let page = inodes.readdir(ino, &after, 0, true).await;
    let mut loaded = listing.lock();
    loaded.fetching = false;
    listing.wake_waiters();
    let page = page?;
    if loaded.after != after || !loaded.more {
        return Ok(());
    }
    for e in page.entries {
        loaded.after.clone_from(&e.name);
        let name = OsString::from_vec(e.name);
        loaded.items.push(DirItem { ino: e.ino, kind: file_type(e.kind), name, attr: e.attr, taken });
    }
    loaded.more = page.more;
    Ok(())
}
