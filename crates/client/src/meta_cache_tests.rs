//! Unit tests of `meta_cache.rs`: what is kept, for how long, and what a
//! recall, a lost session or an own change does.

use super::*;

fn attr(ino: u64, mode: u32) -> pb::Attr {
    pb::Attr { ino, mode, ..Default::default() }
}

fn granted(seq: u64) -> pb::MetaResponse {
    pb::MetaResponse { lease_ms: 1000, grant_seq: seq, ..Default::default() }
}

fn open_cache() -> MetaCache {
    let c = MetaCache::default();
    c.opened(Instant::now(), 1000);
    c
}

#[test]
fn granted_answers_are_served_until_recalled() {
    let c = open_cache();
    let t = c.ticket();
    let cov = c.keep(t, &granted(0), 7, &[&attr(5, 0o644)], &[(1, b"f", Some(5))]);
    assert!(matches!(cov, Coverage::Until(_)));
    assert_eq!(c.attr(5, 7).map(|(a, _)| a.mode), Some(0o644));
    assert_eq!(c.entry(1, b"f", 7).map(|(a, _)| a.map(|a| a.ino)), Some(Some(5)));
    assert!(c.attr(5, 8).is_none(), "another caller was not told it");
    c.recalled(1, &[5]);
    assert!(c.attr(5, 7).is_none());
    assert!(c.entry(1, b"f", 7).is_none(), "the entry's inode is gone");
    assert_eq!(c.acked(), 1);
    assert_eq!(c.stats(), (2, 3));
}

#[test]
fn an_answer_granted_before_a_processed_recall_is_not_kept() {
    let c = open_cache();
    let t = c.ticket();
    c.recalled(3, &[5]);
    assert_eq!(c.keep(t, &granted(2), 7, &[&attr(5, 0o600)], &[]), Coverage::Uncovered);
    assert!(c.attr(5, 7).is_none());
    assert!(matches!(c.keep(c.ticket(), &granted(3), 7, &[&attr(5, 0o600)], &[]), Coverage::Until(_)));
}

#[test]
fn an_own_change_voids_reads_in_flight_and_orders_its_own_answers() {
    let c = open_cache();
    let t = c.ticket();
    c.changed([5]);
    assert_eq!(c.keep(t, &granted(0), 7, &[&attr(5, 0o600)], &[]), Coverage::Uncovered);
    // Two own changes answered out of order: the older is not kept.
    assert!(matches!(c.keep(None, &granted(2), 7, &[&attr(5, 0o640)], &[]), Coverage::Until(_)));
    assert_eq!(c.keep(None, &granted(1), 7, &[&attr(5, 0o600)], &[]), Coverage::Uncovered);
    assert_eq!(c.attr(5, 7).map(|(a, _)| a.mode), Some(0o640));
    assert_eq!(c.acked(), 0, "own answers acknowledge no recall");
}

#[test]
fn negative_entries_and_ungranted_answers() {
    let c = open_cache();
    c.keep(c.ticket(), &granted(0), 7, &[], &[(1, b"gone", None)]);
    assert_eq!(c.entry(1, b"gone", 7).map(|(a, _)| a.is_none()), Some(true));
    let ungranted = pb::MetaResponse::default();
    assert_eq!(c.keep(c.ticket(), &ungranted, 7, &[&attr(9, 0)], &[]), Coverage::Uncovered);
    assert!(c.attr(9, 7).is_none());
}

#[test]
fn nothing_is_served_past_the_lease_or_after_the_session_is_lost() {
    let c = MetaCache::default();
    assert!(c.ticket().is_none(), "no session yet");
    assert_eq!(c.uncovered(), Coverage::Uncovered);
    // Opened by a watch sent long enough ago that its lease has run out.
    c.opened(Instant::now() - Duration::from_millis(900), 1000);
    c.keep(c.ticket(), &granted(0), 7, &[&attr(5, 0)], &[]);
    assert!(c.attr(5, 7).is_none(), "past send time + lease - margin");
    c.renewed(Instant::now(), 1000);
    assert!(c.attr(5, 7).is_none(), "the lapsed answer was not kept");
    c.keep(c.ticket(), &granted(0), 7, &[&attr(5, 0)], &[]);
    assert!(c.attr(5, 7).is_some());
    c.lost();
    assert!(c.attr(5, 7).is_none());
    assert!(c.ticket().is_none());
    c.off();
    assert_eq!(c.uncovered(), Coverage::Inactive);
    assert_eq!(Coverage::Inactive.ttl(Duration::from_secs(1)), Duration::from_secs(1));
    assert_eq!(Coverage::Uncovered.ttl(Duration::from_secs(1)), Duration::ZERO);
}

#[test]
fn a_whole_granted_listing_makes_absent_names_known_until_recalled() {
    let c = open_cache();
    let (a5, a6) = (attr(5, 0o644), attr(6, 0o644));
    let cov = c.listed(c.ticket(), &granted(0), 7, 1, (b"", b"a", true), &[&a5], &[(1, b"a", Some(5))]);
    assert!(matches!(cov, Coverage::Until(_)));
    assert!(c.entry(1, b"zz", 7).is_none(), "half a listing says nothing of other names");
    c.listed(c.ticket(), &granted(0), 7, 1, (b"a", b"b", false), &[&a6], &[(1, b"b", Some(6))]);
    assert_eq!(c.entry(1, b"zz", 7).map(|(a, _)| a.is_none()), Some(true), "known absent");
    assert_eq!(c.entry(1, b"b", 7).map(|(a, _)| a.map(|a| a.ino)), Some(Some(6)));
    assert!(c.entry(1, b"zz", 8).is_none(), "another caller listed nothing");
    c.recalled(1, &[1]);
    assert!(c.entry(1, b"zz", 7).is_none(), "a recall of the directory ends it");
}

#[test]
fn a_listing_under_way_knows_names_up_to_its_last_page_are_absent() {
    let c = open_cache();
    let (a5, a6) = (attr(5, 0o644), attr(6, 0o644));
    c.listed(c.ticket(), &granted(0), 7, 1, (b"", b"m", true), &[&a5, &a6], &[(1, b"a", Some(5)), (1, b"m", Some(6))]);
    assert_eq!(c.listing_from(1, 7), b"m".to_vec(), "the next page starts after the last name kept");
    assert_eq!(c.entry(1, b"b", 7).map(|(a, _)| a.is_none()), Some(true), "between listed names: absent");
    assert_eq!(c.entry(1, b"m", 7).map(|(a, _)| a.map(|a| a.ino)), Some(Some(6)));
    assert!(c.entry(1, b"n", 7).is_none(), "past the last page: unknown");
    assert!(c.entry(1, b"b", 8).is_none(), "another caller listed nothing");
    // An own change in the directory ends the listing (its pages no longer
    // continue what the directory holds now).
    c.own_change(&granted(1), 7, &[1], &[(1, b"c", Some(9))], &[&attr(9, 0o644)], None);
    assert!(c.entry(1, b"b", 7).is_none() && c.listing_from(1, 7).is_empty());
    c.listed(c.ticket(), &granted(1), 7, 1, (b"", b"m", true), &[&a5, &a6], &[(1, b"a", Some(5)), (1, b"m", Some(6))]);
    c.recalled(2, &[1]);
    assert!(c.entry(1, b"b", 7).is_none() && c.listing_from(1, 7).is_empty(), "a recall ends it");
}

#[test]
fn a_listing_broken_by_an_ungranted_page_or_a_recall_is_not_whole() {
    let c = open_cache();
    let (a5, a6) = (attr(5, 0o644), attr(6, 0o644));
    c.listed(c.ticket(), &granted(0), 7, 1, (b"", b"a", true), &[&a5], &[(1, b"a", Some(5))]);
    let ungranted = pb::MetaResponse::default();
    c.listed(c.ticket(), &ungranted, 7, 1, (b"a", b"b", true), &[&a6], &[(1, b"b", Some(6))]);
    c.listed(c.ticket(), &granted(0), 7, 1, (b"b", b"c", false), &[], &[]);
    assert!(c.entry(1, b"zz", 7).is_none());
    // A recall between two pages.
    c.listed(c.ticket(), &granted(0), 7, 2, (b"", b"a", true), &[&a5], &[(2, b"a", Some(5))]);
    c.recalled(1, &[2]);
    c.listed(c.ticket(), &granted(1), 7, 2, (b"a", b"b", false), &[&a6], &[(2, b"b", Some(6))]);
    assert!(c.entry(2, b"zz", 7).is_none());
}

#[test]
fn own_changes_keep_a_complete_directory_complete_for_their_caller_only() {
    let c = open_cache();
    let d = pb::Attr { ino: 2, kind: pb::FileKind::Directory as i32, mode: 0o755, ..Default::default() };
    c.own_change(&granted(1), 7, &[1], &[(1, b"d", Some(2))], &[&d], Some(2));
    assert_eq!(c.entry(2, b"f", 7).map(|(a, _)| a.is_none()), Some(true), "a new directory is empty");
    c.listed(c.ticket(), &granted(1), 8, 2, (b"", b"", false), &[], &[]);
    assert_eq!(c.entry(2, b"f", 8).map(|(a, _)| a.is_none()), Some(true));
    let f = attr(3, 0o644);
    c.own_change(&granted(2), 7, &[2], &[(2, b"f", Some(3))], &[&f], None);
    assert_eq!(c.entry(2, b"f", 7).map(|(a, _)| a.map(|a| a.ino)), Some(Some(3)), "its own create");
    assert_eq!(c.entry(2, b"g", 7).map(|(a, _)| a.is_none()), Some(true), "still complete");
    assert!(c.entry(2, b"f", 8).is_none(), "another caller was not told: not absent for it");
    // An ungranted answer (another change came between) drops the directory.
    c.own_change(&pb::MetaResponse::default(), 7, &[2], &[(2, b"g", Some(4))], &[], None);
    assert!(c.entry(2, b"h", 7).is_none());
}

#[test]
fn an_own_rename_moves_the_name_and_keeps_both_directories_complete() {
    let c = open_cache();
    let dir = |ino| pb::Attr { ino, kind: pb::FileKind::Directory as i32, mode: 0o755, ..Default::default() };
    c.own_change(&granted(1), 7, &[1], &[(1, b"a", Some(2))], &[&dir(2)], Some(2));
    c.own_change(&granted(2), 7, &[1], &[(1, b"b", Some(3))], &[&dir(3)], Some(3));
    c.own_change(&granted(3), 7, &[2], &[(2, b"f", Some(10))], &[&attr(10, 0o644)], None);
    // a/f → b/g, granted: the answer names the moved inode.
    let moved = attr(10, 0o640);
    c.own_change(&granted(4), 7, &[2, 3, 10], &[(2, b"f", None), (3, b"g", Some(10))], &[&moved], None);
    assert_eq!(c.entry(2, b"f", 7).map(|(a, _)| a.is_none()), Some(true), "the old name is gone");
    assert_eq!(c.entry(3, b"g", 7).map(|(a, _)| a.map(|a| (a.ino, a.mode))), Some(Some((10, 0o640))));
    assert_eq!(c.entry(2, b"z", 7).map(|(a, _)| a.is_none()), Some(true), "the source folder stays complete");
    assert_eq!(c.entry(3, b"z", 7).map(|(a, _)| a.is_none()), Some(true), "the target folder stays complete");
    // Not granted: both folders are dropped, nothing is learnt.
    c.own_change(&pb::MetaResponse::default(), 7, &[2, 3, 10], &[(3, b"g", None), (2, b"h", Some(10))], &[], None);
    assert!(c.entry(2, b"h", 7).is_none() && c.entry(3, b"g", 7).is_none() && c.entry(2, b"z", 7).is_none());
}

#[test]
fn own_answers_out_of_order_are_kept_unless_they_name_an_inode_known_newer() {
    let c = open_cache();
    let dir = |ino| pb::Attr { ino, kind: pb::FileKind::Directory as i32, mode: 0o755, ..Default::default() };
    // Two folders made by this client: complete.
    c.own_change(&granted(1), 7, &[1], &[(1, b"a", Some(2))], &[&dir(2)], Some(2));
    c.own_change(&granted(2), 7, &[1], &[(1, b"b", Some(3))], &[&dir(3)], Some(3));
    // Two threads create in each folder; the answer granted later (seq 5)
    // arrives first. The older one (seq 4) names other inodes: kept, and
    // folder 3 stays complete (it was dropped before, and every later name
    // in it was looked up at the leader).
    c.own_change(&granted(5), 7, &[2], &[(2, b"x", Some(10))], &[&attr(10, 0o644)], None);
    c.own_change(&granted(4), 7, &[3], &[(3, b"y", Some(11))], &[&attr(11, 0o644)], None);
    assert_eq!(c.entry(3, b"y", 7).map(|(a, _)| a.map(|a| a.ino)), Some(Some(11)));
    assert_eq!(c.entry(3, b"z", 7).map(|(a, _)| a.is_none()), Some(true), "folder 3 still complete");
    assert_eq!(c.entry(2, b"z", 7).map(|(a, _)| a.is_none()), Some(true), "folder 2 still complete");
    // An older answer naming an inode a newer one named: not kept.
    c.own_change(&granted(3), 7, &[2], &[(2, b"w", Some(12))], &[&attr(12, 0o644)], None);
    assert!(c.entry(2, b"z", 7).is_none(), "folder 2 dropped: its newest known state is seq 5");
    assert!(c.attr(12, 7).is_none());
}

#[test]
fn a_newer_ungranted_answer_a_commit_or_a_recall_voids_older_own_answers_of_its_inodes_only() {
    let c = open_cache();
    // Not granted (another change came between), answered at seq 6.
    let ungranted = pb::MetaResponse { grant_seq: 6, ..Default::default() };
    c.own_change(&ungranted, 7, &[5], &[], &[], None);
    assert_eq!(c.keep(None, &granted(5), 7, &[&attr(5, 0o600)], &[]), Coverage::Uncovered);
    assert!(c.attr(5, 7).is_none(), "older than the ungranted change of inode 5");
    // A commit answered at seq 8 (the cache learns nothing from it).
    c.changed_at([6], 8);
    assert_eq!(c.keep(None, &granted(7), 7, &[&attr(6, 0o600)], &[]), Coverage::Uncovered);
    // A recall of inode 9 at seq 9.
    c.recalled(9, &[9]);
    assert_eq!(c.keep(None, &granted(8), 7, &[&attr(9, 0o600)], &[]), Coverage::Uncovered);
    // None of them named inode 4: an answer of seq 1 about it is kept.
    assert!(matches!(c.keep(None, &granted(1), 7, &[&attr(4, 0o600)], &[]), Coverage::Until(_)));
    assert_eq!(c.attr(4, 7).map(|(a, _)| a.mode), Some(0o600));
}

#[tokio::test]
async fn waiting_for_a_session_ends_when_one_opens_or_caching_is_off() {
    let c = std::sync::Arc::new(MetaCache::default());
    assert!(!c.wait_open(Duration::from_millis(20)).await, "none opened");
    let opener = c.clone();
    let waiter = tokio::spawn(async move { opener.wait_open(Duration::from_secs(20)).await });
    tokio::task::yield_now().await;
    c.opened(Instant::now(), 1000);
    assert!(waiter.await.expect("waiter"), "woken by the session opening");
    assert!(!MetaCache::disabled().wait_open(Duration::from_secs(20)).await, "off: at once, false");
}

#[test]
fn many_listed_entries_are_checked_at_once_each_as_one_would_be() {
    let c = open_cache();
    let (a5, a6) = (attr(5, 0o644), attr(6, 0o600));
    c.listed(c.ticket(), &granted(0), 7, 1, (b"", b"m", true), &[&a5, &a6], &[(1, b"a", Some(5)), (1, b"m", Some(6))]);
    let items: [(&[u8], u64); 4] = [(b"a", 5), (b"m", 6), (b"m", 5), (b"zz", 8)];
    let modes = |caller| -> Vec<Option<u32>> {
        c.entries_until(1, &items, caller, |a| a.mode).into_iter().map(|f| f.map(|(m, _)| m)).collect()
    };
    assert_eq!(
        modes(7),
        vec![Some(0o644), Some(0o600), None, None],
        "a name under another inode, or unknown: not covered"
    );
    for (i, (name, ino)) in items.iter().enumerate() {
        let one = c.entry_until(1, name, *ino, 7, |a| a.mode).map(|(m, _)| m);
        assert_eq!(one, modes(7)[i], "the batch answers as one lookup would");
    }
    assert_eq!(modes(8), vec![None; 4], "another caller was told nothing");
    c.recalled(1, &[6]);
    assert_eq!(modes(7), vec![Some(0o644), None, None, None], "a recalled inode is not covered");
    c.lost();
    assert_eq!(modes(7), vec![None; 4], "nothing without a session");
}
