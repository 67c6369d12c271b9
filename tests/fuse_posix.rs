//! POSIX corners through the FUSE mount: mmap, special files, isatty, open
//! files outliving unlink and rename, names that are not UTF-8, and
//! CPython's own file-system tests run on the mount; another user working
//! through a shared mount as itself, and clearing the set-id bits of a file
//! it writes but does not own.

mod harness;
#[path = "harness/mount.rs"]
mod mount;

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{content, TestCluster, CHUNK};
use mount::{cpath, errno_of, Mount};

#[test]
fn mmap_reads_and_special_files_through_the_mount() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileTypeExt;

    let c = TestCluster::start(45);
    let m = Mount::start(&c, &[]);

    // mmap reads: a file written through the mount, several chunks and a
    // partial page at the end, mapped read-only and compared byte for byte.
    let data = content(3 * CHUNK + 4321, 45);
    fs::write(m.p("mapped"), &data).unwrap();
    let f = File::open(m.p("mapped")).unwrap();
    // SAFETY: a fresh read-only shared mapping of a valid descriptor, of the
    // file's length; nothing else maps or truncates it while it is read, and
    // it is unmapped below before `f` closes.
    let addr =
        unsafe { libc::mmap(std::ptr::null_mut(), data.len(), libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert_ne!(addr, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    // SAFETY: the mapping above is `data.len()` readable bytes and lives until munmap.
    let mapped = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), data.len()) };
    assert!(mapped == data.as_slice(), "mmap read differs from what was written");
    // Pages read out of order (the last chunk first) agree too.
    assert_eq!(&mapped[3 * CHUNK..], &data[3 * CHUNK..]);
    // SAFETY: unmapping exactly the mapping made above; `mapped` is not used after.
    assert_eq!(unsafe { libc::munmap(addr, data.len()) }, 0);
    drop(f);
    // The CLI's file, mapped through the mount.
    let cli = content(2 * CHUNK + 7, 46);
    c.put_bytes("/from-cli", &cli);
    let f = File::open(m.p("from-cli")).unwrap();
    // SAFETY: as above: a read-only shared mapping of the whole file.
    let addr =
        unsafe { libc::mmap(std::ptr::null_mut(), cli.len(), libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert_ne!(addr, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    // SAFETY: the mapping is `cli.len()` readable bytes until munmap below.
    let same = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), cli.len()) } == cli.as_slice();
    // SAFETY: unmapping the mapping made above.
    assert_eq!(unsafe { libc::munmap(addr, cli.len()) }, 0);
    assert!(same, "mmap of a file the native client wrote differs");
    drop(f);

    // Special files: mkfifo and mknod of every kind, with type and rdev.
    let mknod = |rel: &str, mode: u32, dev: libc::dev_t| {
        let p = cpath(&m.p(rel));
        // SAFETY: a valid C string.
        let r = unsafe { libc::mknod(p.as_ptr(), mode, dev) };
        if r == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        }
    };
    assert_eq!(mknod("fifo", libc::S_IFIFO | 0o640, 0), 0);
    assert_eq!(mknod("sock", libc::S_IFSOCK | 0o600, 0), 0);
    assert_eq!(mknod("chr", libc::S_IFCHR | 0o644, libc::makedev(1, 3)), 0);
    assert_eq!(mknod("blk", libc::S_IFBLK | 0o644, libc::makedev(259, 65537)), 0);
    assert_eq!(mknod("fifo", libc::S_IFIFO | 0o640, 0), libc::EEXIST);
    let md = |rel: &str| fs::symlink_metadata(m.p(rel)).unwrap();
    assert!(md("fifo").file_type().is_fifo());
    assert!(md("sock").file_type().is_socket());
    assert!(md("chr").file_type().is_char_device());
    assert!(md("blk").file_type().is_block_device());
    assert_eq!((md("fifo").mode() & 0o7777, md("fifo").len(), md("fifo").nlink()), (0o640, 0, 1));
    assert_eq!(md("chr").rdev(), libc::makedev(1, 3));
    assert_eq!(md("blk").rdev(), libc::makedev(259, 65537));
    assert_eq!(md("fifo").rdev(), 0);
    let mut kinds: Vec<(String, fs::FileType)> = fs::read_dir(&m.path)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().into_string().unwrap(), e.file_type().unwrap()))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    let special: Vec<_> = kinds.iter().filter(|(_, t)| !t.is_file()).map(|(n, _)| n.as_str()).collect();
    assert_eq!(special, ["blk", "chr", "fifo", "sock"], "readdir reports the types");
    // A fifo on the mount is a real pipe (the kernel serves it).
    let pipe = OpenOptions::new().read(true).write(true).open(m.p("fifo")).unwrap();
    (&pipe).write_all(b"through the pipe").unwrap();
    let mut back = [0u8; 16];
    (&pipe).read_exact(&mut back).unwrap();
    assert_eq!(&back, b"through the pipe");
    drop(pipe);
    assert_eq!(md("fifo").len(), 0, "pipe data never reaches the file system");
    assert_eq!(errno_of(File::open(m.p("sock"))), libc::ENXIO);
    // Links, chmod/chown, rename and unlink behave as for files.
    fs::hard_link(m.p("fifo"), m.p("fifo2")).unwrap();
    assert_eq!(md("fifo").nlink(), 2);
    fs::set_permissions(m.p("chr"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::lchown(m.p("chr"), Some(65534), Some(65534)).unwrap();
    let chr = md("chr");
    assert_eq!((chr.mode() & 0o7777, chr.uid(), chr.gid(), chr.rdev()), (0o600, 65534, 65534, libc::makedev(1, 3)));
    fs::write(m.p("plain"), b"x").unwrap();
    fs::rename(m.p("blk"), m.p("plain")).unwrap();
    assert!(md("plain").file_type().is_block_device());
    assert_eq!(errno_of(fs::remove_dir(m.p("sock"))), libc::ENOTDIR);
    for rel in ["fifo", "fifo2", "sock", "chr", "plain"] {
        fs::remove_file(m.p(rel)).unwrap();
    }
    let left: Vec<_> = fs::read_dir(&m.path).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    drop(m);
}

#[test]
fn an_open_file_outlives_its_unlink_and_rename_over_it_until_closed() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let c = TestCluster::start(47);
    let m = Mount::start(&c, &[]);
    let data = content(3 * CHUNK + 5, 47);
    fs::write(m.p("tmp"), &data).unwrap();
    fs::write(m.p("victim"), b"old contents").unwrap();
    let mut f = OpenOptions::new().read(true).write(true).open(m.p("tmp")).unwrap();
    let mut v = File::open(m.p("victim")).unwrap();
    fs::remove_file(m.p("tmp")).unwrap();
    fs::write(m.p("new"), b"replacement").unwrap();
    fs::rename(m.p("new"), m.p("victim")).unwrap();
    assert!(fs::metadata(m.p("tmp")).is_err(), "the name is gone");
    // Both files are still whole through their open descriptors.
    let mut back = Vec::new();
    f.read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    f.seek(SeekFrom::Start(1)).unwrap();
    f.write_all(b"XY").unwrap();
    f.sync_all().unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut head = [0u8; 4];
    f.read_exact(&mut head).unwrap();
    assert_eq!(&head[1..3], b"XY");
    let mut old = String::new();
    v.read_to_string(&mut old).unwrap();
    assert_eq!(old, "old contents");
    assert_eq!(fs::read(m.p("victim")).unwrap(), b"replacement");
    drop(f);
    drop(v);
}

/// Every Python `open()` asks isatty (ioctl TCGETS); fuser's default ioctl
/// logged a warning line per call and answered ENOSYS.
#[test]
fn isatty_on_a_mounted_file_is_enotty_without_a_log_line_per_call() {
    let c = TestCluster::start(36);
    let m = Mount::start(&c, &[]);
    fs::write(m.p("f"), b"data").unwrap();
    let lines = |m: &Mount| fs::read_to_string(&m.log).unwrap_or_default().lines().count();
    let before = lines(&m);
    const CALLS: usize = 200;
    for _ in 0..CALLS {
        let f = File::open(m.p("f")).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // SAFETY: a termios is plain data; all zeros is a valid value.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open for the call; `t` is a live termios.
        let r = unsafe { libc::ioctl(fd, libc::TCGETS, &mut t) };
        assert_eq!(r, -1, "TCGETS on a regular file succeeded");
        assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOTTY));
        // SAFETY: `fd` is open for the call.
        assert_eq!(unsafe { libc::isatty(fd) }, 0);
        assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOTTY));
    }
    // The mount writes its log line before it replies: no wait needed.
    let grew = lines(&m) - before;
    let log = fs::read_to_string(&m.log).unwrap_or_default();
    assert!(grew < CALLS, "the mount log grew by {grew} lines for {CALLS} opens with isatty:\n{log}");
    assert!(!log.contains("ioctl"), "the mount logged ioctls:\n{log}");
}

/// Linux names are bytes: Python's PEP 383 tests create `@test_…_tmp-\udcff`
/// (byte 0xFF), and datasets have Latin-1 names. The mount refused every
/// name that was not UTF-8 with EINVAL.
#[test]
fn names_that_are_not_utf8_work_through_the_mount() {
    use std::ffi::OsStr;
    let c = TestCluster::start(39);
    let m = Mount::start(&c, &[]);
    let name = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
    let (ff, cafe) = (name(b"\xff"), name(b"caf\xe9"));
    fs::write(m.path.join(&ff), b"ff").unwrap();
    fs::create_dir(m.path.join(&cafe)).unwrap();
    fs::write(m.path.join(&cafe).join(&ff), b"inside").unwrap();
    // Listed with their exact bytes.
    let mut names: Vec<_> = fs::read_dir(&m.path).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, vec![cafe.clone(), ff.clone()]);
    // Stat, read, rename to another non-UTF-8 name, unlink.
    assert_eq!(fs::metadata(m.path.join(&ff)).unwrap().len(), 2);
    assert!(fs::metadata(m.path.join(&cafe)).unwrap().is_dir());
    assert_eq!(fs::read(m.path.join(&cafe).join(&ff)).unwrap(), b"inside");
    let moved = name(b"na\xefve-\x80");
    fs::rename(m.path.join(&ff), m.path.join(&cafe).join(&moved)).unwrap();
    assert_eq!(errno_of(fs::metadata(m.path.join(&ff))), libc::ENOENT);
    assert_eq!(fs::read(m.path.join(&cafe).join(&moved)).unwrap(), b"ff");
    fs::remove_file(m.path.join(&cafe).join(&moved)).unwrap();
    fs::remove_file(m.path.join(&cafe).join(&ff)).unwrap();
    assert_eq!(fs::read_dir(m.path.join(&cafe)).unwrap().count(), 0);
    // Symlink targets, hard links and xattr names are bytes too.
    std::os::unix::fs::symlink(OsStr::from_bytes(b"caf\xe9"), m.path.join(name(b"l\xff"))).unwrap();
    assert_eq!(fs::read_link(m.path.join(name(b"l\xff"))).unwrap().as_os_str(), cafe.as_os_str());
    fs::write(m.p("plain"), b"p").unwrap();
    fs::hard_link(m.p("plain"), m.path.join(name(b"\xe9t\xe9"))).unwrap();
    assert_eq!(fs::metadata(m.p("plain")).unwrap().nlink(), 2);
    let xname = CString::new(&b"user.\xff"[..]).unwrap();
    let f = cpath(&m.p("plain"));
    // SAFETY: valid C strings and a live buffer of the given length.
    assert_eq!(unsafe { libc::setxattr(f.as_ptr(), xname.as_ptr(), b"v".as_ptr().cast(), 1, 0) }, 0);
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and a live buffer of the given length.
    let n = unsafe { libc::listxattr(f.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(&buf[..n.max(0) as usize], b"user.\xff\0");
    // Still refused: names longer than 255 bytes, in bytes.
    assert_eq!(errno_of(fs::write(m.path.join(name(&[0xe9; 256])), b"")), libc::ENAMETOOLONG);
    fs::write(m.path.join(name(&[0xe9; 255])), b"").unwrap();
    // The CLI shows such names lossily (human output only).
    let ls = c.ok(&["ls", "/"]);
    assert!(ls.contains("caf\u{FFFD}/"), "{ls}");
}

/// The interpreter for the CPython test below (`SHARDLINE_TEST_PYTHON`, else
/// `python3`), if its own regression tests (`test.support`) can be imported.
fn cpython_with_its_tests() -> Result<String, String> {
    let python = std::env::var("SHARDLINE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python).args(["-c", "import test.support, test.libregrtest"]).output() {
        Ok(o) if o.status.success() => Ok(python),
        Ok(o) => Err(format!("{python} cannot import test.support: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("cannot run {python}: {e}")),
    }
}

/// CPython's own file-system tests, with their working directory and
/// temporary files on a mount: names that are bytes (PEP 383), isatty on
/// every open, copy/move/rmtree, raw file I/O, mkstemp/mkdtemp.
#[test]
fn cpython_os_shutil_fileio_and_tempfile_tests_pass_on_a_mount() {
    use std::os::unix::process::CommandExt;
    let python = match cpython_with_its_tests() {
        Ok(p) => p,
        Err(why) => {
            // Straight to stderr (not the captured eprintln!): a skip must show.
            let _ = writeln!(std::io::stderr(), "\nSKIPPED cpython test modules on a mount: {why}\n");
            return;
        }
    };
    let c = TestCluster::start(37);
    let m = Mount::start(&c, &[]);
    let out_path = c.dir.path().join("cpython-tests.log");
    let out = File::create(&out_path).unwrap();
    let mut child = Command::new(&python)
        .args(["-m", "test", "--tempdir"])
        .arg(&m.path)
        // Per test file, then the whole run below: a hang fails, never blocks.
        .args(["--timeout", "900", "-v", "test_os", "test_shutil", "test_fileio", "test_tempfile"])
        .current_dir(&m.path)
        .env("TMPDIR", &m.path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the process group this test started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = fs::read_to_string(&out_path).unwrap_or_default();
    let tail: String = log.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    let failures: Vec<&str> = log.lines().filter(|l| l.starts_with("FAIL:") || l.starts_with("ERROR:")).collect();
    let status = status.unwrap_or_else(|| panic!("the CPython tests ran past 30 minutes:\n{tail}"));
    assert!(
        status.success() && log.contains("Result: SUCCESS"),
        "CPython tests failed ({status}) on the mount:\n{}\n…\n{tail}",
        failures.join("\n")
    );
    assert!(log.contains("Total test files: run=4/4"), "not every test module ran:\n{tail}");
    // Their temporary files were on the mount (the run's working directory).
    assert!(log.contains(&format!("== cwd: {}", m.path.display())), "the tests ran elsewhere:\n{log:.2000}");
}

/// A mount with --allow-other under a folder other users may enter (the
/// folder is removed when the returned guard drops, after the mount).
fn shared_mount(c: &TestCluster) -> (tempfile::TempDir, Mount) {
    let top = tempfile::Builder::new().prefix("shardline-mnt-").tempdir().expect("temp dir");
    fs::set_permissions(top.path(), fs::Permissions::from_mode(0o755)).expect("chmod the mount's parent");
    let path = top.path().join("mnt");
    fs::create_dir(&path).expect("mount point");
    let m = Mount::start_at(c, &path, &["--allow-other"]);
    (top, m)
}

/// `sh -c script` as user and group `uid` with no other groups, with the
/// environment variable `var.0` naming the folder `var.1`.
fn sh_as(uid: &str, var: (&str, &std::path::Path), script: &str) -> std::process::Output {
    sh_as_in(uid, None, var, script)
}

/// [`sh_as`] with the supplementary groups `groups` (comma-separated) if given.
fn sh_as_in(uid: &str, groups: Option<&str>, var: (&str, &std::path::Path), script: &str) -> std::process::Output {
    let groups = match groups {
        Some(g) => vec!["--groups", g],
        None => vec!["--clear-groups"],
    };
    Command::new("setpriv")
        .args(["--reuid", uid, "--regid", uid])
        .args(groups)
        .args(["sh", "-c", script])
        .env(var.0, var.1)
        .output()
        .expect("run setpriv")
}

/// Each kernel request acts at the metadata service for the user who made
/// it (issue 12, unmapped client certificates): through a mount run by root
/// with --allow-other, uid 1000 creates, writes, appends, chmods, renames
/// and removes its own files, checked by the server as uid 1000 (a request
/// claiming another uid would be refused there), and uid 1001 cannot read
/// or remove uid 1000's 0600 file.
#[test]
fn another_user_works_through_a_shared_mount_as_itself() {
    let c = TestCluster::start(135);
    let (_top, m) = shared_mount(&c);
    let u = m.p("u");
    fs::create_dir(&u).expect("mkdir /u");
    std::os::unix::fs::chown(&u, Some(1000), Some(1000)).expect("chown /u");
    let as_user = |uid: &str, script: &str| sh_as(uid, ("U", &u), script);
    let out = as_user(
        "1000",
        "cd \"$U\" && printf hello > f && chmod 600 f && mv f g && printf ' more' >> g && cat g && mkdir d && \
         printf x > d/x && rm d/x && rmdir d",
    );
    assert!(out.status.success(), "uid 1000 in its directory: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"hello more");
    let g = fs::metadata(u.join("g")).expect("stat g");
    assert_eq!((g.uid(), g.gid(), g.mode() & 0o7777), (1000, 1000, 0o600));

    let out = as_user("1001", "cat \"$U/g\"");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    let out = as_user("1001", "rm -f \"$U/g\"");
    assert!(!out.status.success(), "uid 1001 removed uid 1000's file");
    assert_eq!(fs::read(u.join("g")).expect("root reads"), b"hello more");

    let out = as_user("1000", "rm \"$U/g\" && ls -A \"$U\"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));

    // Supplementary groups are claimed too (read from /proc, kept a second
    // per process): a 0640 file of group 4242 reads for a member of it, not
    // for the same user without it. The server checks the claim: without
    // the group it would refuse the chunk list the kernel allowed.
    fs::write(u.join("grp"), b"for the group").expect("write as root");
    std::os::unix::fs::chown(u.join("grp"), Some(0), Some(4242)).expect("chown grp");
    fs::set_permissions(u.join("grp"), fs::Permissions::from_mode(0o640)).expect("chmod grp");
    let cat = "cat \"$U/grp\" && cat \"$U/grp\"";
    let out = sh_as_in("1001", Some("4242"), ("U", &u), cat);
    assert!(out.status.success(), "a member of 4242: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"for the groupfor the group");
    let out = sh_as_in("1001", Some("4243"), ("U", &u), cat);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    drop(m);
}

/// pjdfstest chmod/12.t: a write by a user who may write a set-user-ID or
/// set-group-ID file but does not own it failed with EPERM: the kernel drops
/// the set-id bits with a setattr made as the writer, and the mount and the
/// metadata service refused it as a chmod by someone not the owner. Such a
/// write or truncate now succeeds and clears the bits, as on Linux; a chmod
/// by that user is still refused, and root's writes keep the bits.
#[test]
fn a_write_by_a_user_not_the_owner_clears_set_id_bits() {
    let c = TestCluster::start(171);
    let (_top, m) = shared_mount(&c);
    let d = m.p("d");
    fs::create_dir(&d).expect("mkdir /d");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).expect("chmod /d");
    let as_user = |script: &str| sh_as("1000", ("D", &d), script);
    let mode = |name: &str| fs::metadata(d.join(name)).expect("stat").mode() & 0o7777;
    for (name, bits) in [("u", 0o4777), ("g", 0o2777), ("ug", 0o6777), ("t", 0o6777)] {
        fs::write(d.join(name), b"").expect("create as root");
        fs::set_permissions(d.join(name), fs::Permissions::from_mode(bits)).expect("chmod as root");
        assert_eq!(mode(name), bits);
    }
    let out = as_user("cd \"$D\" && printf x >> u && printf x >> g && printf x >> ug && truncate -s 3 t");
    assert!(out.status.success(), "a write by uid 1000: {}", String::from_utf8_lossy(&out.stderr));
    for name in ["u", "g", "ug", "t"] {
        assert_eq!(mode(name), 0o777, "{name}: the set-id bits stay after a write by another user");
    }
    assert_eq!(fs::read(d.join("ug")).expect("read"), b"x");
    assert_eq!(fs::metadata(d.join("t")).expect("stat").len(), 3);

    // Only clearing: a chmod by uid 1000 is still refused.
    fs::set_permissions(d.join("t"), fs::Permissions::from_mode(0o6777)).expect("chmod as root");
    let out = as_user("chmod 777 \"$D/t\"");
    assert!(!out.status.success(), "uid 1000 chmodded root's file");
    assert_eq!(mode("t"), 0o6777);
    // Root (CAP_FSETID) writes and keeps them.
    OpenOptions::new().append(true).open(d.join("t")).expect("open").write_all(b"y").expect("write as root");
    assert_eq!(mode("t"), 0o6777);
    drop(m);
}
