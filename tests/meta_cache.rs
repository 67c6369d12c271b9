//! Black-box: the coherent metadata cache (docs/metadata-cache.md) on a
//! real cluster. Two clients (native, or a mount and a native client): one
//! caches a file's entry, attributes and chunk list — a repeated lookup
//! or open is answered from memory —, the other changes it (chmod, a write that grows it, a
//! rename over it, an unlink), and the first sees the change on its very
//! next lookup or stat. A mount stopped with SIGSTOP delays another client's
//! change by about the lease, not forever, and serves no old value when it
//! resumes. After the leader is killed, a change made through the new
//! leader is still seen. An idle client keeps its session. Octets
//! 127.0.0.141-144 and 146.

mod harness;
#[path = "harness/meta_cluster.rs"]
mod meta_cluster;
#[path = "harness/mount.rs"]
mod mount;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use harness::TestCluster;
use mount::Mount;
use shardline_client::inode_api::{InodeAttr, NewFile, SetAttrRequest, XattrMode};
use shardline_client::{Client, ClientError, FileHandle};
use shardline_types::{ErrorCode, ROOT_INO};

async fn connect(c: &TestCluster) -> Client {
    meta_cluster::connect(c, Duration::from_secs(30)).await
}

/// Look `name` up on `a` until a repeat is answered from its cache, and
/// return the attributes. Its session opens in the background (awaited);
/// even then a leader may refuse a grant for a while (its read lease not yet
/// held after an election, a recall under way), which no event announces:
/// retried.
async fn cached_lookup(a: &Client, name: &str) -> InodeAttr {
    cached_lookup_in(a, ROOT_INO, name).await
}

/// [`cached_lookup`] of `name` in the folder `dir`.
async fn cached_lookup_in(a: &Client, dir: u64, name: &str) -> InodeAttr {
    assert!(a.wait_metadata_cache(Duration::from_secs(20)).await, "no metadata cache session opened");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let first = a.inodes().lookup(dir, name).await.expect("lookup");
        let (hits, misses) = a.metadata_cache_stats();
        let again = a.inodes().lookup(dir, name).await.expect("lookup again");
        if a.metadata_cache_stats() == (hits + 1, misses) {
            assert_eq!(first, again, "a cached answer is the answer");
            return again;
        }
        assert!(Instant::now() < deadline, "no lookup was ever answered from the cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Open `ino` on `a` until a repeated open is answered from its cache (no
/// chunk list asked for), and return that handle; retried as
/// [`cached_lookup`] is.
async fn cached_open(a: &Client, ino: u64) -> FileHandle {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        FileHandle::open(a, ino).await.expect("open");
        let (hits, misses) = a.metadata_cache_stats();
        let again = FileHandle::open(a, ino).await.expect("open again");
        if a.metadata_cache_stats() == (hits + 1, misses) {
            return again;
        }
        assert!(Instant::now() < deadline, "no open was ever answered from the cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn not_found(r: Result<InodeAttr, ClientError>) -> bool {
    matches!(r, Err(ClientError::Meta(e)) if e.code() == ErrorCode::NotFound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_change_is_seen_by_the_next_lookup_or_stat() {
    let c = TestCluster::start(141);
    let (a, b) = (connect(&c).await, connect(&c).await);
    let f = b.inodes().create(NewFile::new(ROOT_INO, "f")).await.expect("create");

    // A repeated stat is served from memory: no metadata request.
    cached_lookup(&a, "f").await;
    let (hits, misses) = a.metadata_cache_stats();
    assert_eq!(a.inodes().getattr(f.ino).await.expect("stat").mode, 0o644);
    assert_eq!(a.metadata_cache_stats(), (hits + 1, misses), "the stat was a cache hit");

    // chmod
    b.inodes().setattr(f.ino, &SetAttrRequest { mode: Some(0o600), ..Default::default() }).await.expect("chmod");
    assert_eq!(a.inodes().getattr(f.ino).await.expect("stat").mode, 0o600, "chmod seen at once");

    // A write that grows the file.
    cached_lookup(&a, "f").await;
    let h = FileHandle::open(&b, f.ino).await.expect("open");
    h.write_at(0, &[7u8; 5000]).await.expect("write");
    h.flush().await.expect("flush");
    assert_eq!(a.inodes().getattr(f.ino).await.expect("stat").size, 5000, "growth seen at once");
    assert_eq!(a.inodes().lookup(ROOT_INO, "f").await.expect("lookup").size, 5000);

    // Opening the unchanged file again is answered from memory (its chunk
    // list is cached); another client's rewrite is read at the next open.
    let opened = cached_open(&a, f.ino).await;
    assert_eq!(&opened.read_at(0, 10_000).await.expect("read")[..], &[7u8; 5000][..]);
    h.write_at(0, &[9u8; 6000]).await.expect("rewrite");
    h.flush().await.expect("flush");
    let reopened = FileHandle::open(&a, f.ino).await.expect("reopen");
    assert_eq!(&reopened.read_at(0, 10_000).await.expect("read")[..], &[9u8; 6000][..], "the rewrite at once");

    // A rename over it.
    cached_lookup(&a, "f").await;
    let g = b.inodes().create(NewFile::new(ROOT_INO, "g")).await.expect("create g");
    b.inodes().rename(ROOT_INO, "g", ROOT_INO, "f").await.expect("rename over");
    assert_eq!(a.inodes().lookup(ROOT_INO, "f").await.expect("lookup").ino, g.ino, "the new file at once");
    assert!(not_found(a.inodes().lookup(ROOT_INO, "g").await), "the old name is gone");
    assert!(a.inodes().getattr(f.ino).await.is_err(), "the replaced file is gone");

    // An unlink; then a name known absent is answered from memory until made.
    cached_lookup(&a, "f").await;
    b.inodes().unlink(ROOT_INO, "f").await.expect("unlink");
    assert!(not_found(a.inodes().lookup(ROOT_INO, "f").await), "the unlink seen at once");
    let (hits, _) = a.metadata_cache_stats();
    assert!(not_found(a.inodes().lookup(ROOT_INO, "f").await));
    assert!(a.metadata_cache_stats().0 > hits, "a known-absent name is a cache hit");
    let again = b.inodes().create(NewFile::new(ROOT_INO, "f")).await.expect("create again");
    assert_eq!(a.inodes().lookup(ROOT_INO, "f").await.expect("lookup").ino, again.ino, "the create seen at once");

    // A client's own change updates its own cache.
    cached_lookup(&a, "f").await;
    a.inodes().setattr(again.ino, &SetAttrRequest { mode: Some(0o640), ..Default::default() }).await.expect("chmod");
    assert_eq!(a.inodes().getattr(again.ino).await.expect("stat").mode, 0o640);
    assert_eq!(b.inodes().getattr(again.ino).await.expect("stat").mode, 0o640);

    // Its own rename between two links to one inode changes nothing (POSIX):
    // both names stay, in its cache too (the nemesis found this one).
    a.inodes().link(again.ino, ROOT_INO, "h").await.expect("link");
    cached_lookup(&a, "h").await;
    a.inodes().rename(ROOT_INO, "h", ROOT_INO, "f").await.expect("rename onto its own link");
    assert_eq!(a.inodes().lookup(ROOT_INO, "h").await.expect("both names stay").ino, again.ino);
    assert_eq!(a.inodes().lookup(ROOT_INO, "f").await.expect("both names stay").ino, again.ino);

    // A directory it made is known empty: names it has not made there are
    // absent without asking (the kernel's lookup before each create), and
    // its own creates keep it so; another client's create is seen at once.
    let d = a.inodes().mkdir(ROOT_INO, "fresh", 0o755, 0, 0).await.expect("mkdir").ino;
    let (hits, misses) = a.metadata_cache_stats();
    assert!(not_found(a.inodes().lookup(d, "x").await));
    a.inodes().create(NewFile::new(d, "x")).await.expect("create x");
    assert!(not_found(a.inodes().lookup(d, "y").await));
    assert_eq!(a.metadata_cache_stats(), (hits + 2, misses), "both absent names answered from memory");
    let y = b.inodes().create(NewFile::new(d, "y")).await.expect("create y elsewhere");
    assert_eq!(a.inodes().lookup(d, "y").await.expect("seen at once").ino, y.ino);
    // A whole listing (with attributes) of a directory another client made does the same.
    let e = b.inodes().mkdir(ROOT_INO, "made-elsewhere", 0o755, 0, 0).await.expect("mkdir").ino;
    for n in ["p", "q", "r"] {
        b.inodes().create(NewFile::new(e, n)).await.expect("create");
    }
    let listed = a.inodes().readdir(e, "", 0, true).await.expect("list");
    assert_eq!(listed.entries.len(), 3);
    let (hits, misses) = a.metadata_cache_stats();
    assert!(not_found(a.inodes().lookup(e, "s").await));
    assert_eq!(a.inodes().lookup(e, "q").await.expect("listed").ino, listed.entries[1].ino);
    assert_eq!(a.metadata_cache_stats(), (hits + 2, misses), "answered from the listing");
    let s = b.inodes().create(NewFile::new(e, "s")).await.expect("create s elsewhere");
    assert_eq!(a.inodes().lookup(e, "s").await.expect("seen at once").ino, s.ino);

    // Extended attributes a file lacks (`ls -l` asks for two per entry)
    // are known absent from its cached attributes, which say it has none:
    // no request, not even for its names. Another client's setxattr and
    // removexattr are seen at once.
    let absent =
        |r: Result<Vec<u8>, ClientError>| matches!(r, Err(ClientError::Meta(e)) if e.code() == ErrorCode::NotFound);
    cached_lookup_in(&a, e, "s").await;
    let (hits, misses) = a.metadata_cache_stats();
    assert!(absent(a.inodes().getxattr(s.ino, "user.a").await));
    assert!(absent(a.inodes().getxattr(s.ino, "security.selinux").await));
    assert!(a.inodes().listxattr(s.ino).await.expect("listxattr").is_empty());
    assert_eq!(a.metadata_cache_stats(), (hits + 3, misses), "answered from the cached attributes");
    b.inodes().setxattr(s.ino, "user.a", b"v", XattrMode::Any).await.expect("setxattr elsewhere");
    assert_eq!(a.inodes().getxattr(s.ino, "user.a").await.expect("seen at once"), b"v");
    assert_eq!(a.inodes().listxattr(s.ino).await.expect("listxattr"), vec![b"user.a".to_vec()]);
    assert!(absent(a.inodes().getxattr(s.ino, "security.selinux").await));
    b.inodes().removexattr(s.ino, "user.a").await.expect("removexattr elsewhere");
    assert!(absent(a.inodes().getxattr(s.ino, "user.a").await), "a removal is seen at once");
}

/// An idle client keeps its session: the leader keeps its read lease
/// without reads to renew it (before, it lapsed every 0.7 s, a watch
/// answered then failed, and the session was lost about once a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_clients_session_lives_on() {
    let c = TestCluster::start(146);
    let a = connect(&c).await;
    assert!(a.wait_metadata_cache(Duration::from_secs(20)).await, "no metadata cache session opened");
    // Whatever elections the cluster's start still causes are over once a
    // create through the leader is acknowledged.
    a.inodes().create(NewFile::new(ROOT_INO, "f")).await.expect("create");
    let opened = a.metadata_cache_sessions();
    // Idle for several read leases (0.675 s each) and cache leases (0.5 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(a.metadata_cache_sessions(), opened, "the session was lost while the client was idle");
    cached_lookup(&a, "f").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_mount_delays_a_change_by_about_the_lease_and_serves_nothing_old_after() {
    let c = TestCluster::start(142);
    let b = connect(&c).await;
    let f = b.inodes().create(NewFile::new(ROOT_INO, "f")).await.expect("create");
    let mut m = Mount::start(&c, &["--metrics-listen", METRICS]);
    // The mount stats the file (and holds it) until its session is open:
    // the stat shows the file while a change is recalled from it.
    let mode = |m: &Mount| std::fs::metadata(m.p("f")).expect("stat through the mount").mode() & 0o7777;
    assert_eq!(mode(&m), 0o644);
    wait_for_session(&m).await;
    assert_eq!(mode(&m), 0o644);

    // SAFETY: pausing and resuming our own child process.
    unsafe { libc::kill(m.pid(), libc::SIGSTOP) };
    let chmod = SetAttrRequest { mode: Some(0o600), ..Default::default() };
    let changed = tokio::time::timeout(Duration::from_secs(20), b.inodes().setattr(f.ino, &chmod)).await;
    // SAFETY: as above.
    unsafe { libc::kill(m.pid(), libc::SIGCONT) };
    changed.expect("the change waited for a stopped client forever").expect("chmod");
    assert_eq!(mode(&m), 0o600, "the resumed mount serves the new mode");
    std::fs::set_permissions(m.p("f"), std::fs::Permissions::from_mode(0o640)).expect("chmod through the mount");
    assert_eq!(b.inodes().getattr(f.ino).await.expect("stat").mode, 0o640);
    m.stop();
}

/// Wait until the mount's metadata cache has a session (its metrics count
/// a cache hit once a repeated lookup is answered from memory).
async fn wait_for_session(m: &Mount) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe = m.p("probe-missing");
    loop {
        // A name known absent is cached once the session is open; the
        // kernel does not cache it (no negative entries), so each stat reaches the mount.
        let _ = std::fs::metadata(&probe);
        if mount_cache_hits() > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the mount's metadata cache never opened a session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the stopped mount serves its metrics.
const METRICS: &str = "127.0.0.142:19142";

/// The mount's metadata-cache hits, from its metrics endpoint (0 while it
/// does not answer).
fn mount_cache_hits() -> u64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(METRICS) else { return 0 };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut body = String::new();
    if write!(s, "GET /metrics HTTP/1.1\r\nHost: {METRICS}\r\nConnection: close\r\n\r\n").is_err()
        || s.read_to_string(&mut body).is_err()
    {
        return 0;
    }
    body.lines()
        .filter(|l| l.starts_with("shardline_client_cache_lookups_total"))
        .filter(|l| l.contains("cache=\"meta\"") && l.contains("result=\"hit\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_a_new_leader_is_seen_by_the_next_stat() {
    let c = TestCluster::start(143);
    let (a, b) = (connect(&c).await, connect(&c).await);
    let f = b.inodes().create(NewFile::new(ROOT_INO, "f")).await.expect("create");
    cached_lookup(&a, "f").await;
    let leader = c.meta_leader(Duration::from_secs(20));
    c.kill_meta(leader);
    b.inodes().setattr(f.ino, &SetAttrRequest { mode: Some(0o600), ..Default::default() }).await.expect("chmod");
    assert_eq!(a.inodes().getattr(f.ino).await.expect("stat").mode, 0o600, "seen after the leader changed");
    assert_eq!(a.inodes().lookup(ROOT_INO, "f").await.expect("lookup").mode, 0o600);
    // Caching resumes under the new leader.
    cached_lookup(&a, "f").await;
    b.inodes().setattr(f.ino, &SetAttrRequest { mode: Some(0o640), ..Default::default() }).await.expect("chmod");
    assert_eq!(a.inodes().getattr(f.ino).await.expect("stat").mode, 0o640);
}

#[test]
fn two_mounts_see_each_others_changes_at_once() {
    let c = TestCluster::start(144);
    let (a, b) = (Mount::start(&c, &[]), Mount::start(&c, &[]));
    std::fs::write(b.p("f"), b"hello").expect("write");
    let meta = |m: &Mount, p: &str| std::fs::metadata(m.p(p));
    assert_eq!(meta(&a, "f").expect("stat").len(), 5);
    std::fs::set_permissions(b.p("f"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(meta(&a, "f").expect("stat").mode() & 0o7777, 0o600, "chmod");
    std::fs::write(b.p("f"), vec![1u8; 9000]).expect("grow");
    assert_eq!(meta(&a, "f").expect("stat").len(), 9000, "growth");
    std::fs::write(b.p("g"), b"other").expect("write g");
    let g = meta(&b, "g").expect("stat g").ino();
    std::fs::rename(b.p("g"), b.p("f")).expect("rename over");
    assert_eq!(meta(&a, "f").expect("stat").ino(), g, "rename over");
    assert_eq!(std::fs::read(a.p("f")).expect("read"), b"other");
    std::fs::remove_file(b.p("f")).expect("unlink");
    assert!(meta(&a, "f").is_err(), "unlink");
}
