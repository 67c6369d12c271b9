//! Chunk lists in the coherent metadata cache: a file's attributes and
//! every committed chunk, as a granted `GetChunks` answered them, so that
//! opening an unchanged file again costs no round trip. A commit, truncate,
//! layout change or key rewrap of the file touches its inode, so the
//! leader recalls the list like any other copy of the inode.
//!
//! The get tokens that came with the list expire (`--cap-ttl-s`) and are
//! issued under a placement epoch: a list is served only while every token
//! is good for [`TOKEN_MARGIN_MS`] more under the client's current epoch,
//! so a reader never has to ask for tokens one chunk at a time instead.

use std::sync::Arc;

use shardline_proto::v1 as pb;

use super::{Caller, MetaCache, Ticket, MAX_ITEMS};

/// A cached list is served only if its tokens are good for this long yet.
pub const TOKEN_MARGIN_MS: u64 = 30_000;

/// A file's attributes and committed chunks, in index order.
pub type ChunkList = Arc<(pb::Attr, Vec<pb::Chunk>)>;

/// Whether the tokens of `chunks` (if any) are still worth using at `now_ms`
/// under placement epoch `epoch`.
fn tokens_fresh(chunks: &[pb::Chunk], now_ms: u64, epoch: u64) -> bool {
    chunks
        .iter()
        .filter_map(|c| c.cap.as_ref())
        .all(|cap| cap.expires_ms > now_ms.saturating_add(TOKEN_MARGIN_MS) && cap.epoch >= epoch)
}

impl MetaCache {
    /// `ino`'s chunk list as `caller` was told it, while valid and while
    /// its tokens are fresh (`now_ms`, placement `epoch`).
    pub fn chunk_list(&self, ino: u64, caller: Caller, now_ms: u64, epoch: u64) -> Option<ChunkList> {
        let found = {
            let s = self.lock();
            s.valid(std::time::Instant::now())
                .and_then(|_| s.chunk_lists.get(&ino)?.get(caller).cloned())
                .filter(|l| tokens_fresh(&l.1, now_ms, epoch))
        };
        self.count(found.is_some());
        found
    }

    /// Keep a granted `GetChunks` answer that held `ino`'s whole list.
    pub fn keep_chunk_list(&self, ticket: Option<Ticket>, resp: &pb::MetaResponse, caller: Caller, list: ChunkList) {
        let mut s = self.lock();
        if s.off || ticket.is_none() || s.granted(ticket, resp, &[list.0.ino], std::time::Instant::now()).is_none() {
            return;
        }
        let cost = 1 + list.1.len();
        if s.items + cost > MAX_ITEMS {
            s.drop_all();
            return;
        }
        s.items += cost;
        let ino = list.0.ino;
        super::set_in(&mut s.chunk_lists, ino, caller, list);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn list(ino: u64, expires_ms: u64, epoch: u64) -> ChunkList {
        let cap = pb::ShardCap { expires_ms, epoch, ..Default::default() };
        let chunk = pb::Chunk { index: 0, version: 3, cap: Some(cap), ..Default::default() };
        Arc::new((pb::Attr { ino, size: 10, ..Default::default() }, vec![chunk]))
    }

    fn granted() -> pb::MetaResponse {
        pb::MetaResponse { lease_ms: 1000, grant_seq: 0, ..Default::default() }
    }

    #[test]
    fn a_granted_list_is_served_until_recalled_and_only_with_fresh_tokens() {
        let c = MetaCache::default();
        c.opened(Instant::now(), 1000);
        let now = 1_000_000;
        c.keep_chunk_list(c.ticket(), &granted(), 7, list(5, now + 300_000, 2));
        assert_eq!(c.chunk_list(5, 7, now, 2).map(|l| l.1[0].version), Some(3));
        assert!(c.chunk_list(5, 8, now, 2).is_none(), "another caller was not told it");
        assert!(c.chunk_list(5, 7, now + 290_000, 2).is_none(), "its tokens are about to expire");
        assert!(c.chunk_list(5, 7, now, 3).is_none(), "its tokens predate the placement epoch");
        c.recalled(1, &[5]);
        assert!(c.chunk_list(5, 7, now, 2).is_none(), "recalled");
    }

    #[test]
    fn an_own_commit_or_a_lost_session_drops_the_list_and_voids_reads_in_flight() {
        let c = MetaCache::default();
        c.opened(Instant::now(), 1000);
        let now = 1_000_000;
        let t = c.ticket();
        c.changed([5]);
        c.keep_chunk_list(t, &granted(), 7, list(5, now + 300_000, 1));
        assert!(c.chunk_list(5, 7, now, 1).is_none(), "read in flight during an own change");
        c.keep_chunk_list(c.ticket(), &granted(), 7, list(5, now + 300_000, 1));
        assert!(c.chunk_list(5, 7, now, 1).is_some());
        c.changed([5]);
        assert!(c.chunk_list(5, 7, now, 1).is_none(), "an own commit");
        c.keep_chunk_list(c.ticket(), &granted(), 7, list(5, now + 300_000, 1));
        c.lost();
        assert!(c.chunk_list(5, 7, now, 1).is_none(), "session lost");
        let ungranted = pb::MetaResponse::default();
        c.opened(Instant::now(), 1000);
        c.keep_chunk_list(c.ticket(), &ungranted, 7, list(5, now + 300_000, 1));
        assert!(c.chunk_list(5, 7, now, 1).is_none(), "not granted");
    }
}
