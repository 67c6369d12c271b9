//! A `shardline mount --foreground` child process for FUSE tests, and the
//! raw system calls (xattrs, renameat2) the tests make through it. The
//! mount is unmounted and its process killed on drop, even when a test
//! fails. Without /dev/fuse or fusermount3 a test fails, saying so.

#![allow(dead_code)]

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{TestCluster, BIN};

/// Fail loudly when this machine cannot mount FUSE file systems.
pub fn require_fuse() {
    let dev = OpenOptions::new().read(true).write(true).open("/dev/fuse");
    assert!(
        dev.is_ok(),
        "FUSE tests need /dev/fuse (read-write): {:?}. Load the fuse module or run with --device /dev/fuse",
        dev.err()
    );
    let fm = Command::new("fusermount3").arg("-V").output();
    assert!(fm.is_ok(), "FUSE tests need fusermount3 (apt-get install fuse3; tools/test installs it as root)");
}

pub fn dev_of(p: &Path) -> Option<u64> {
    fs::metadata(p).ok().map(|m| m.dev())
}

/// A `shardline mount` child process; unmounted and killed on drop.
pub struct Mount {
    pub path: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Mount {
    pub fn start(c: &TestCluster, extra: &[&str]) -> Mount {
        let dir = tempfile::Builder::new().prefix("shardline-mnt-").tempdir().expect("temp dir");
        let path = dir.path().join("mnt");
        fs::create_dir(&path).expect("mount point");
        let mut m = Mount::start_at(c, &path, extra);
        m._dir = Some(dir);
        m
    }

    pub fn start_at(c: &TestCluster, path: &Path, extra: &[&str]) -> Mount {
        require_fuse();
        let log = c.dir.path().join(format!("mount-{:x}.log", rand::random::<u32>()));
        let child = Command::new(BIN)
            .arg("--cluster")
            .arg(c.cluster_file())
            .arg("mount")
            .arg(path)
            .arg("--foreground")
            .args(if extra.contains(&"--attr-ttl-ms") { &[][..] } else { &["--attr-ttl-ms", "1000"][..] })
            .args(["--entry-ttl-ms", "1000"])
            .args(extra)
            .env("SHARDLINE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("mount log"))
            .spawn()
            .expect("spawn shardline mount");
        let mut m = Mount { path: path.to_path_buf(), child: Some(child), log, _dir: None };
        m.wait_mounted();
        m
    }

    pub fn wait_mounted(&mut self) {
        let parent = dev_of(self.path.parent().expect("parent")).expect("parent dev");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if dev_of(&self.path).is_some_and(|d| d != parent) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("shardline mount exited ({status}): {}", fs::read_to_string(&self.log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mount did not appear: {}", fs::read_to_string(&self.log).unwrap_or_default());
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// SIGTERM: the mount must unmount cleanly and exit 0.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = wait_child(&mut child, Duration::from_secs(20));
        assert!(status.success(), "mount exited with {status}: {}", fs::read_to_string(&self.log).unwrap_or_default());
        let parent = dev_of(self.path.parent().expect("parent"));
        assert_eq!(dev_of(&self.path), parent, "still mounted after SIGTERM");
    }

    /// SIGKILL the mount process, as a crash would.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            wait_child(&mut child, Duration::from_secs(10));
        }
        let _ = Command::new("fusermount3").args(["-u", "-z"]).arg(&self.path).stderr(Stdio::null()).status();
    }
}

pub fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL")
}

pub fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> i32 {
    let (p, n) = (cpath(p), CString::new(name).expect("name"));
    // SAFETY: valid C strings and a live buffer of the given length.
    let r = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

pub fn getxattr(p: &Path, name: &str) -> Result<Vec<u8>, i32> {
    let (p, n) = (cpath(p), CString::new(name).expect("name"));
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a live buffer of the given length.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1));
    }
    buf.truncate(r as usize);
    Ok(buf)
}

pub fn listxattr(p: &Path) -> Vec<String> {
    let p = cpath(p);
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C string and a live buffer of the given length.
    let r = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf[..r as usize].split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into()).collect()
}

pub fn removexattr(p: &Path, name: &str) -> i32 {
    let (p, n) = (cpath(p), CString::new(name).expect("name"));
    // SAFETY: valid C strings.
    let r = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

pub fn renameat2(from: &Path, to: &Path, flags: u32) -> i32 {
    let (f, t) = (cpath(from), cpath(to));
    // SAFETY: valid C strings; AT_FDCWD with absolute paths.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), flags) };
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}
