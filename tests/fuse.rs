//! The FUSE mount on a real kernel mount: `shardline mount` as a child
//! process over a real local cluster (one per test): file I/O, namespace
//! operations, listings, consistency between mounts, daemon mode. Faults
//! are in fuse_faults.rs, POSIX corners and other suites in fuse_posix.rs.
//! Octets 127.0.0.36-47 and 49 are these files' (48 is tools/pjdfstest's).

mod harness;
#[path = "harness/mount.rs"]
mod mount;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use harness::{content, TestCluster, BIN, CHUNK};
use mount::{cpath, dev_of, errno_of, getxattr, listxattr, removexattr, renameat2, require_fuse, setxattr, Mount};

fn awkward_sizes() -> Vec<usize> {
    vec![0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, 5 * CHUNK / 2]
}

#[test]
fn file_io_through_the_mount_is_byte_exact_and_matches_the_native_client() {
    let c = TestCluster::start(40);
    let m = Mount::start(&c, &[]);
    fs::create_dir(m.p("io")).unwrap();

    // Whole files of awkward sizes, written in odd pieces.
    for (i, &n) in awkward_sizes().iter().enumerate() {
        let data = content(n, i as u64);
        let mut f = File::create(m.p(&format!("io/f-{n}"))).unwrap();
        for piece in data.chunks(7919) {
            f.write_all(piece).unwrap();
        }
        drop(f);
        assert_eq!(fs::read(m.p(&format!("io/f-{n}"))).unwrap(), data, "size {n} through the mount");
        assert_eq!(c.get_bytes(&format!("/io/f-{n}")).unwrap(), data, "size {n} through the CLI");
    }

    // The CLI's files read through the mount.
    let cli_data = content(4 * CHUNK + 3, 77);
    c.put_bytes("/io/from-cli", &cli_data);
    assert_eq!(fs::read(m.p("io/from-cli")).unwrap(), cli_data);

    // Overwrite in the middle, across a chunk boundary, then read back.
    let path = m.p("io/f-196625");
    let mut expect = content(3 * CHUNK + 17, 5);
    let patch = content(CHUNK / 2 + 5, 99);
    let at = CHUNK + CHUNK * 3 / 4;
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&patch, at as u64).unwrap();
    f.sync_all().unwrap();
    drop(f);
    expect[at..at + patch.len()].copy_from_slice(&patch);
    assert_eq!(fs::read(&path).unwrap(), expect, "overwrite through the mount");
    assert_eq!(c.get_bytes("/io/f-196625").unwrap(), expect, "overwrite through the CLI");

    // Append with O_APPEND, twice, from two opens.
    for k in 0..2 {
        let extra = content(CHUNK / 3 + k, 200 + k as u64);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&extra).unwrap();
        drop(f);
        expect.extend_from_slice(&extra);
    }
    assert_eq!(fs::read(&path).unwrap(), expect, "appends");

    // Truncate: shrink inside a chunk, then grow again: the tail reads zeros.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(CHUNK as u64 + 100).unwrap();
    expect.truncate(CHUNK + 100);
    assert_eq!(fs::read(&path).unwrap(), expect, "after shrink");
    f.set_len(3 * CHUNK as u64).unwrap();
    drop(f);
    expect.resize(3 * CHUNK, 0);
    assert_eq!(fs::read(&path).unwrap(), expect, "after grow: zeros, not old bytes");
    assert_eq!(c.get_bytes("/io/f-196625").unwrap(), expect, "truncated file through the CLI");
    // truncate(2) by path, without an open file.
    let cp = cpath(&path);
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::truncate(cp.as_ptr(), 10) }, 0);
    assert_eq!(fs::read(&path).unwrap(), &expect[..10]);

    // Sparse: write far past the end; the gap reads as zeros.
    let sparse = m.p("io/sparse");
    let f = File::create(&sparse).unwrap();
    f.write_all_at(b"tail", 10 * CHUNK as u64 + 5).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut want = vec![0u8; 10 * CHUNK + 9];
    want[..4].copy_from_slice(b"head");
    want[10 * CHUNK + 5..].copy_from_slice(b"tail");
    assert_eq!(fs::read(&sparse).unwrap(), want);
    assert_eq!(fs::metadata(&sparse).unwrap().len(), want.len() as u64);

    // fallocate (mode 0) extends the size; read-write handles read their own writes.
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.p("io/rw")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor.
    assert_eq!(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 3 * CHUNK as i64) }, 0);
    assert_eq!(f.metadata().unwrap().len(), 3 * CHUNK as u64);
    f.write_all(b"abc").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut back = vec![0u8; 5];
    f.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"abc\0\0");
    f.sync_data().unwrap();
    drop(f);

    // Exclusive create of an existing file.
    let e = OpenOptions::new().write(true).create_new(true).open(m.p("io/rw"));
    assert_eq!(errno_of(e), libc::EEXIST);
    drop(m);
}

#[test]
fn namespace_operations_and_errors_through_the_mount() {
    let c = TestCluster::start(41);
    let m = Mount::start(&c, &[]);

    // mkdir, rmdir, ENOTEMPTY, ENOENT, ENOTDIR, EISDIR, ENAMETOOLONG.
    fs::create_dir(m.p("d")).unwrap();
    fs::write(m.p("d/f"), b"x").unwrap();
    assert_eq!(errno_of(fs::remove_dir(m.p("d"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::create_dir(m.p("d"))), libc::EEXIST);
    assert_eq!(errno_of(fs::read(m.p("nope"))), libc::ENOENT);
    assert_eq!(errno_of(fs::read(m.p("d/f/g"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs::remove_file(m.p("d"))), libc::EISDIR);
    assert_eq!(errno_of(fs::write(m.p(&"n".repeat(256)), b"")), libc::ENAMETOOLONG);
    let mut names: Vec<String> =
        fs::read_dir(m.p("d")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    names.sort();
    assert_eq!(names, vec!["f"]);
    fs::remove_file(m.p("d/f")).unwrap();
    fs::remove_dir(m.p("d")).unwrap();
    assert!(!m.p("d").exists());

    // rename with overwrite: the target's old content is gone.
    fs::write(m.p("a"), b"new").unwrap();
    fs::write(m.p("b"), b"old").unwrap();
    fs::rename(m.p("a"), m.p("b")).unwrap();
    assert_eq!(fs::read(m.p("b")).unwrap(), b"new");
    assert!(!m.p("a").exists());
    fs::write(m.p("a"), b"a").unwrap();
    assert_eq!(renameat2(&m.p("a"), &m.p("b"), libc::RENAME_NOREPLACE), libc::EEXIST);
    assert_eq!(renameat2(&m.p("a"), &m.p("b"), libc::RENAME_EXCHANGE), libc::EINVAL);
    assert_eq!(renameat2(&m.p("a"), &m.p("c"), libc::RENAME_NOREPLACE), 0);

    // Hard links and nlink.
    fs::hard_link(m.p("b"), m.p("b2")).unwrap();
    assert_eq!(fs::metadata(m.p("b")).unwrap().nlink(), 2);
    assert_eq!(fs::metadata(m.p("b")).unwrap().ino(), fs::metadata(m.p("b2")).unwrap().ino());
    fs::remove_file(m.p("b")).unwrap();
    assert_eq!(fs::metadata(m.p("b2")).unwrap().nlink(), 1);
    assert_eq!(fs::read(m.p("b2")).unwrap(), b"new");

    // Symlinks.
    std::os::unix::fs::symlink("b2", m.p("s")).unwrap();
    assert_eq!(fs::read_link(m.p("s")).unwrap(), Path::new("b2"));
    assert_eq!(fs::read(m.p("s")).unwrap(), b"new");
    assert!(fs::symlink_metadata(m.p("s")).unwrap().file_type().is_symlink());

    // chmod, chown (as root) and utimens.
    fs::set_permissions(m.p("b2"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::metadata(m.p("b2")).unwrap().mode() & 0o7777, 0o600);
    std::os::unix::fs::chown(m.p("b2"), Some(1234), Some(5678)).unwrap();
    let md = fs::metadata(m.p("b2")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000) + Duration::from_nanos(123);
    let f = OpenOptions::new().write(true).open(m.p("b2")).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t)).unwrap();
    drop(f);
    let md = fs::metadata(m.p("b2")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_000_000_000, 123));
    assert_eq!(md.atime(), 1_000_000_000);

    // Extended attributes.
    let f = m.p("b2");
    assert_eq!(getxattr(&f, "user.k"), Err(libc::ENODATA));
    assert_eq!(setxattr(&f, "user.k", b"v1", 0), 0);
    assert_eq!(setxattr(&f, "user.k", b"v2", libc::XATTR_CREATE), libc::EEXIST);
    assert_eq!(setxattr(&f, "user.other", b"", libc::XATTR_REPLACE), libc::ENODATA);
    assert_eq!(setxattr(&f, "user.k", b"v2", libc::XATTR_REPLACE), 0);
    assert_eq!(getxattr(&f, "user.k"), Ok(b"v2".to_vec()));
    assert_eq!(setxattr(&f, "user.e", b"", 0), 0);
    let mut names = listxattr(&f);
    names.sort();
    assert_eq!(names, vec!["user.e", "user.k"]);
    assert_eq!(removexattr(&f, "user.k"), 0);
    assert_eq!(removexattr(&f, "user.k"), libc::ENODATA);

    // statfs.
    // SAFETY: statvfs is plain data; all zeros is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let root = cpath(&m.path);
    // SAFETY: valid C string and a live statvfs.
    assert_eq!(unsafe { libc::statvfs(root.as_ptr(), &mut st) }, 0);
    assert!(
        st.f_blocks > 0 && st.f_bsize > 0 && st.f_namemax >= 255,
        "statfs: blocks {} bsize {}",
        st.f_blocks,
        st.f_bsize
    );
    assert!(st.f_files > st.f_ffree, "inodes in use are counted");

    // The namespace is the cluster's: the CLI sees it.
    let ls = c.ok(&["ls", "/"]);
    assert!(ls.contains("b2") && ls.contains("c") && ls.contains("s"), "{ls}");
    drop(m);
}

#[test]
fn two_mounts_of_one_cluster_are_close_to_open_consistent() {
    let c = TestCluster::start(42);
    // A's kernel caches attributes for a minute: only close-to-open
    // refreshes them.
    let a = Mount::start(&c, &["--attr-ttl-ms", "60000"]);
    let b = Mount::start(&c, &["--suid", "--dev"]);
    // Asked otherwise, B honours setuid bits and devices; A does not.
    let (a_opts, b_opts) = (mount_options(&a.path), mount_options(&b.path));
    assert!(a_opts.iter().any(|o| o == "nosuid") && a_opts.iter().any(|o| o == "nodev"), "{a_opts:?}");
    assert!(!b_opts.iter().any(|o| o == "nosuid" || o == "nodev"), "{b_opts:?}");
    let data = content(3 * CHUNK + 11, 1);
    fs::write(a.p("shared"), &data).unwrap();
    assert_eq!(fs::read(b.p("shared")).unwrap(), data, "B opens after A closed");

    // B rewrites part of it and grows it; A's next open sees all of it.
    assert_eq!(fs::metadata(a.p("shared")).unwrap().len(), data.len() as u64, "A's kernel caches the size");
    let mut expect = data.clone();
    let f = OpenOptions::new().write(true).open(b.p("shared")).unwrap();
    let patch = content(CHUNK + 1, 2);
    let (at, end) = (2 * CHUNK + 3, 3 * CHUNK + 4);
    f.write_all_at(&patch, at as u64).unwrap();
    drop(f);
    expect.resize(expect.len().max(end), 0);
    expect[at..end].copy_from_slice(&patch);
    let opened = File::open(a.p("shared")).unwrap();
    let (on_a, on_b) = (opened.metadata().unwrap(), fs::metadata(b.p("shared")).unwrap());
    assert_eq!(on_a.len(), expect.len() as u64);
    assert_eq!(on_a.modified().unwrap(), on_b.modified().unwrap(), "A's open dropped the times its kernel cached");
    drop(opened);
    assert_eq!(fs::read(a.p("shared")).unwrap(), expect, "A opens after B closed");

    // A file replaced atomically on A (the CLI's put pattern) is the new one on B.
    fs::write(a.p("tmp"), b"replacement").unwrap();
    fs::rename(a.p("tmp"), a.p("shared")).unwrap();
    assert_eq!(fs::read(b.p("shared")).unwrap(), b"replacement");
    drop(b);
    drop(a);
}

#[test]
fn a_listing_carries_each_entry_s_attributes() {
    let c = TestCluster::start(49);
    c.ok(&["mkdir", "/ls"]);
    c.ok(&["mkdir", "/ls/sub"]);
    let sizes = [0usize, 1, CHUNK - 1, CHUNK + 7, 3 * CHUNK];
    for (i, n) in sizes.iter().enumerate() {
        c.put_bytes(&format!("/ls/f{i}"), &content(*n, i as u64));
    }
    let m = Mount::start(&c, &[]);
    // Another client made these: the mount knows them only from the
    // listing (READDIRPLUS), and every stat must still be right.
    let mut seen = std::collections::BTreeMap::new();
    for e in fs::read_dir(m.p("ls")).unwrap() {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        seen.insert(e.file_name().into_string().unwrap(), (md.is_dir(), md.len()));
    }
    let mut expect: std::collections::BTreeMap<String, (bool, u64)> =
        sizes.iter().enumerate().map(|(i, n)| (format!("f{i}"), (false, *n as u64))).collect();
    expect.insert("sub".into(), (true, 0));
    assert_eq!(seen, expect);
    for (i, n) in sizes.iter().enumerate() {
        let md = fs::metadata(m.p(&format!("ls/f{i}"))).unwrap();
        assert_eq!((md.len(), md.permissions().mode() & 0o777), (*n as u64, 0o644), "f{i}");
    }
    assert!(fs::metadata(m.p("ls/sub")).unwrap().is_dir());

    // Changed through the mount after the listing: its own stat is current.
    fs::write(m.p("ls/f0"), b"grown").unwrap();
    assert_eq!(fs::metadata(m.p("ls/f0")).unwrap().len(), 5);
    let listed: Vec<_> = fs::read_dir(m.p("ls")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).collect();
    assert!(listed.contains(&5), "a new listing shows the new size: {listed:?}");
    drop(m);
}

/// The options of the mount at `path`, from /proc/self/mountinfo.
fn mount_options(path: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = info.lines().find(|l| l.split(' ').nth(4) == path.to_str()).expect("the mount in mountinfo");
    line.split(' ').nth(5).expect("options").split(',').map(String::from).collect()
}

#[test]
fn a_daemon_mount_returns_once_mounted_and_serves_files() {
    require_fuse();
    let c = TestCluster::start(46);
    c.put_bytes("/hello", b"from the daemon");
    let dir = tempfile::Builder::new().prefix("shardline-mnt-").tempdir().expect("temp dir");
    let path = dir.path().join("mnt");
    fs::create_dir(&path).unwrap();
    let parent_dev = dev_of(&path);
    let log = c.dir.path().join("daemon.log");
    let out = Command::new(BIN)
        .arg("--cluster")
        .arg(c.cluster_file())
        .arg("mount")
        .arg(&path)
        .arg("--daemon")
        .arg("--log-file")
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The command returned only once the mount was up.
    assert_ne!(dev_of(&path), parent_dev, "not mounted when --daemon returned");
    let pid: i32 = String::from_utf8_lossy(&out.stdout)
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("pid in the output");
    let read = fs::read(path.join("hello"));
    // Issue 12 item 3: nosuid and nodev unless asked otherwise (--suid, --dev).
    let options = mount_options(&path);
    // SAFETY: stopping the mount process this test started; it unmounts on SIGTERM.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    harness::wait_gone(pid);
    let _ = Command::new("fusermount3").args(["-u", "-z"]).arg(&path).stderr(Stdio::null()).status();
    assert_eq!(read.unwrap(), b"from the daemon");
    assert_eq!(dev_of(&path), parent_dev, "SIGTERM unmounts");
    assert!(options.iter().any(|o| o == "nosuid") && options.iter().any(|o| o == "nodev"), "{options:?}");
}

#[test]
fn a_listing_of_many_pages_is_whole_in_order_and_carries_attributes() {
    // More entries than three of the metadata service's pages (1,000 each):
    // the mount reads them a page at a time as readdir reaches them.
    const N: usize = 2_600;
    let c = TestCluster::start(152);
    let a = Mount::start(&c, &[]);
    fs::create_dir(a.p("many")).unwrap();
    for i in 0..N {
        fs::write(a.p(&format!("many/e{i:05}")), if i % 7 == 0 { &b"seven"[..] } else { &b""[..] }).unwrap();
    }
    drop(a);
    let m = Mount::start(&c, &[]);
    let listed: Vec<(String, u64)> = fs::read_dir(m.p("many"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), e.metadata().unwrap().len())
        })
        .collect();
    let expect: Vec<(String, u64)> = (0..N).map(|i| (format!("e{i:05}"), if i % 7 == 0 { 5 } else { 0 })).collect();
    assert_eq!(listed.len(), N, "every entry once");
    assert_eq!(listed, expect, "in name order, each with its size");
    drop(m);
}
