//! Unit tests of `cache_leases.rs`: grants, recalls, acknowledgements,
//! expiry, stints and the stale-grant rule.

use super::*;

const L: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_recall_reaches_holders_but_not_the_writer_and_ends_on_ack() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.open(1, t0);
    c.open(2, t0);
    let seen = c.counter();
    assert_eq!(c.grant(1, &[10, 11], seen, None, t0), Some(0));
    assert_eq!(c.grant(2, &[10], seen, None, t0), Some(0));
    let (waits, counter) = c.recall(&[10], Some(2), t0 + ms(1));
    assert_eq!(counter, seen + 1);
    assert_eq!(waits.len(), 1, "the writer's own session is not recalled");
    assert_eq!((waits[0].id, waits[0].seq), (1, 1));
    assert_eq!(c.poll(1, 0), WatchPoll::Recalls(1, vec![10]));
    assert_eq!(c.poll(2, 0), WatchPoll::Idle(1), "the writer's seq moves with nothing to recall");
    assert_eq!((c.seq_of(2), c.seq_of(3)), (Some(1), None), "an ungranted answer carries it");
    assert_eq!(c.outstanding(&waits, t0 + ms(2)).len(), 1);
    assert!(c.renew(1, 1, t0 + ms(3)).is_some());
    assert!(c.outstanding(&waits, t0 + ms(3)).is_empty(), "acknowledged");
    assert_eq!(c.poll(1, 1), WatchPoll::Idle(1));
    // The holding went with the recall: a second change recalls nothing.
    let (waits, _) = c.recall(&[10], None, t0 + ms(4));
    assert_eq!(waits.iter().map(|w| w.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(waits[0].seq, 2, "session 2's seq moved with its own change");
    // Inode 11 is still held by 1.
    let (waits, _) = c.recall(&[11], None, t0 + ms(5));
    assert_eq!((waits[0].id, waits[0].seq), (1, 2));
}

#[test]
fn an_unacknowledged_recall_ends_after_the_lease_and_a_silent_session_expires() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.open(1, t0);
    c.grant(1, &[5], c.counter(), None, t0);
    let (waits, _) = c.recall(&[5], None, t0 + ms(100));
    assert_eq!(c.outstanding(&waits, t0 + ms(1099)).len(), 1);
    assert!(c.outstanding(&waits, t0 + ms(1100)).is_empty(), "the lease passed since the recall");
    // Renewals keep the session, but the wait still ended.
    assert!(c.renew(1, 0, t0 + ms(900)).is_some());
    assert_eq!(c.poll(1, 0), WatchPoll::Recalls(1, vec![5]), "recalls stay until acknowledged");
    // Silent for the lease: gone, and its next watch learns it.
    assert!(c.renew(1, 0, t0 + ms(1900)).is_none());
    assert_eq!(c.poll(1, 0), WatchPoll::Lost);
    assert!(c.grant(1, &[5], c.counter(), None, t0 + ms(1900)).is_none(), "no grant without a session");
}

#[test]
fn an_expired_session_is_dropped_by_the_next_recall() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.open(1, t0);
    c.grant(1, &[5], c.counter(), None, t0);
    let (waits, _) = c.recall(&[5], None, t0 + ms(1001));
    assert!(waits.is_empty(), "an expired session holds nothing");
    assert_eq!(c.sessions(), 0);
    assert!(c.grant(1, &[5], c.counter(), None, t0 + ms(500)).is_none());
}

#[test]
fn an_expired_session_is_dropped_when_another_opens() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.open(1, t0);
    c.grant(1, &[5, 6], c.counter(), None, t0);
    c.open(2, t0 + ms(999));
    assert_eq!(c.sessions(), 2, "session 1 still lives");
    c.open(3, t0 + ms(1001));
    assert_eq!(c.sessions(), 2, "session 1 expired and went when session 3 opened");
    let (waits, _) = c.recall(&[5, 6], None, t0 + ms(1002));
    assert!(waits.is_empty(), "its holdings went with it");
}

#[test]
fn a_recall_between_read_and_grant_refuses_the_grant() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.open(1, t0);
    let seen = c.counter();
    // Another client's change to the inode lands while the read is in flight.
    c.recall(&[7], None, t0);
    assert!(c.grant(1, &[7], seen, None, t0).is_none());
    // A change to another inode does not refuse it; a writer's own does not either.
    let seen = c.counter();
    c.recall(&[99], None, t0);
    let (_, own) = c.recall(&[7], Some(1), t0);
    assert_eq!(c.grant(1, &[7], seen, Some(own), t0), Some(1));
    assert!(c.grant(1, &[99], seen, Some(own), t0).is_none());
    // An answer older than every recall remembered is refused.
    let seen = c.counter();
    for i in 0..=RECENT as u64 {
        c.recall(&[1000 + i], None, t0);
    }
    assert!(c.grant(1, &[7], seen, None, t0).is_none());
    // A change that touches nothing does not move the counter.
    let seen = c.counter();
    c.recall(&[], None, t0);
    assert_eq!(c.grant(1, &[7], seen, None, t0), Some(1), "the session's seq moved with its own change");
}

#[test]
fn a_grant_answered_before_a_recall_carries_an_older_seq() {
    // The stale-grant rule: the client caches a reply only if its grant
    // seq is at least the newest recall it processed.
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.open(1, t0);
    let old = c.grant(1, &[3], c.counter(), None, t0).unwrap_or(u64::MAX);
    let (waits, _) = c.recall(&[3], None, t0);
    assert!(old < waits[0].seq, "a reply from before the recall is recognisably older");
    assert!(c.grant(1, &[3], c.counter(), None, t0).is_none(), "not while that recall is pending");
    c.renew(1, waits[0].seq, t0);
    let new = c.grant(1, &[3], c.counter(), None, t0).unwrap_or(0);
    assert_eq!(new, waits[0].seq, "a reply read after the recall may be cached");
}

#[test]
fn a_change_waits_for_a_session_that_has_not_yet_dropped_an_earlier_recall() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.open(1, t0);
    c.grant(1, &[3], c.counter(), None, t0);
    let (first, _) = c.recall(&[3], None, t0);
    // The session no longer holds 3, but may serve it until it acknowledges.
    let (second, _) = c.recall(&[3], None, t0);
    assert_eq!(second.len(), 1, "the second change waits for it too");
    assert!(!c.outstanding(&second, t0).is_empty());
    c.renew(1, first[0].seq, t0);
    assert!(c.outstanding(&first, t0).is_empty());
    assert!(!c.outstanding(&second, t0).is_empty(), "its own recall is still pending");
    c.renew(1, second[0].seq, t0);
    assert!(c.outstanding(&second, t0).is_empty());
}

#[test]
fn reopening_or_a_new_stint_forgets_and_releases_waiters() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    let stint = Some(t0);
    c.check_stint(stint);
    c.open(1, t0);
    c.grant(1, &[4], c.counter(), None, t0);
    let (waits, _) = c.recall(&[4], None, t0);
    c.open(1, t0 + ms(10));
    assert!(c.outstanding(&waits, t0 + ms(10)).is_empty(), "the old session is gone");
    assert_eq!(c.poll(1, 0), WatchPoll::Idle(0));
    c.grant(1, &[4], c.counter(), None, t0 + ms(10));
    let seen = c.counter();
    c.check_stint(stint);
    assert_eq!(c.sessions(), 1, "the same stint keeps sessions");
    c.check_stint(None);
    assert_eq!(c.sessions(), 0);
    assert_eq!(c.poll(1, 0), WatchPoll::Lost);
    assert_ne!(c.counter(), seen, "grants read across the change are refused");
}

#[test]
fn acknowledging_beyond_the_newest_seq_is_capped() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.open(1, t0);
    c.renew(1, 50, t0);
    c.grant(1, &[8], c.counter(), None, t0);
    let (waits, _) = c.recall(&[8], None, t0);
    assert_eq!(c.outstanding(&waits, t0).len(), 1, "a claimed future ack does not cover a later recall");
}

#[test]
fn waits_outlive_a_leadership_change_until_their_deadline() {
    let (t0, c) = (Instant::now(), CacheLeases::new(L));
    c.check_stint(Some(t0));
    c.open(1, t0);
    c.grant(1, &[4], c.counter(), None, t0);
    let (waits, _) = c.recall(&[4], None, t0);
    c.check_stint(None);
    assert_eq!(c.outstanding(&waits, t0 + ms(999)).len(), 1, "its client may still serve the old value");
    assert!(c.outstanding(&waits, t0 + ms(1000)).is_empty());
}

#[test]
fn inodes_are_busy_while_any_change_touching_them_is_under_way() {
    let c = CacheLeases::new(L);
    c.mark_busy(&[1, 2]);
    c.mark_busy(&[2]);
    assert!(c.is_busy(&[2, 9]) && c.is_busy(&[1]));
    c.clear_busy(&[1, 2]);
    assert!(!c.is_busy(&[1]));
    assert!(c.is_busy(&[2]), "the second change is still under way");
    c.check_stint(None);
    assert!(c.is_busy(&[2]), "a leadership change does not end a change under way");
    c.clear_busy(&[2]);
    assert!(!c.is_busy(&[2]));
}
