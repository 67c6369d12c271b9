//! Mounting: checks that give clear errors (/dev/fuse, the mount point, a
//! stale mount left by a killed process), the fuser session with its
//! options, larger kernel read-ahead, and unmounting.

use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};

use crate::error::FuseError;
use crate::fs::ShardlineFs;

/// How the mount is set up.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Threads reading kernel requests (each with its own cloned /dev/fuse fd).
    pub threads: usize,
    /// Let users other than the mounting one use the mount.
    pub allow_other: bool,
    /// Have fusermount3 unmount when this process dies, however it dies.
    pub auto_unmount: bool,
    /// Kernel read-ahead for the mount, in KiB (0: leave the default).
    pub read_ahead_kb: u32,
    /// Honour setuid/setgid bits (off: the mount is `nosuid`).
    pub suid: bool,
    /// Honour device files (off: the mount is `nodev`).
    pub dev: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            threads: 16,
            allow_other: false,
            auto_unmount: true,
            read_ahead_kb: 16 << 10,
            suid: false,
            dev: false,
        }
    }
}

/// Whether /dev/fuse exists and this process may open it.
pub fn check_device() -> Result<(), FuseError> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(FuseError::DeviceMissing),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(FuseError::DeviceDenied),
        Err(e) => Err(FuseError::Io(e)),
    }
}

/// Make sure `path` is a directory to mount on. A dead FUSE mount there
/// (its process was killed: ENOTCONN) is detached first.
pub fn prepare_mountpoint(path: &Path) -> Result<(), FuseError> {
    let bad = |m: &str| FuseError::Mountpoint(path.display().to_string(), m.to_string());
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(bad("not a directory")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            tracing::warn!("mount point has a dead FUSE mount (its process died); detaching it");
            detach(path)?;
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(bad("not a directory")),
                Err(e) => Err(bad(&format!("still unusable after detaching the dead mount: {e}"))),
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Err(bad("does not exist")),
        Err(e) => Err(bad(&e.to_string())),
    }
}

/// Lazily unmount whatever is mounted at `path`.
pub fn detach(path: &Path) -> Result<(), FuseError> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| FuseError::Mountpoint(path.display().to_string(), "contains a NUL byte".into()))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    // Not root: fusermount3 is set-uid and unmounts the user's own mounts.
    let out = Command::new("fusermount3").args(["-u", "-z"]).arg(path).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(FuseError::Mount(format!("fusermount3 -u -z: {}", String::from_utf8_lossy(&o.stderr).trim()))),
        Err(e) => Err(FuseError::Mount(format!("run fusermount3: {e}"))),
    }
}

/// The auto-unmount watcher's side: wait until the mount process that
/// holds our stdin dies (EOF), then, if the mount it left behind is dead
/// (ENOTCONN), detach it. fusermount3's own auto-unmount can miss a death
/// (it checks once, possibly before the kernel aborts the connection).
pub fn watch_and_detach(path: &Path) {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match std::fs::metadata(path) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTCONN) | Some(libc::ECONNABORTED)) => {
                let _ = detach(path);
                return;
            }
            _ if !is_mount_point(path) => return,
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// A running mount.
pub struct Mounted {
    path: PathBuf,
    unmounter: SessionUnmounter,
    thread: JoinHandle<std::io::Result<()>>,
}

/// Mount `fs` on `path` and serve it on background threads.
pub fn mount(fs: ShardlineFs, path: &Path, opts: &MountOptions) -> Result<Mounted, FuseError> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("shardline".into()),
        MountOption::Subtype("shardline".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::CUSTOM(format!("max_read={}", crate::attr::BLOCK_SIZE)),
    ];
    // A file system whose contents any client certificate may write is not
    // trusted for setuid programs or device nodes unless asked (said
    // explicitly either way: fuser's own default is nosuid, nodev).
    config.mount_options.push(if opts.suid { MountOption::Suid } else { MountOption::NoSuid });
    config.mount_options.push(if opts.dev { MountOption::Dev } else { MountOption::NoDev });
    if opts.auto_unmount {
        config.mount_options.push(MountOption::AutoUnmount);
    }
    config.acl = match (opts.allow_other, opts.auto_unmount) {
        (true, _) => SessionACL::All,
        // fusermount3's auto_unmount needs allow_other; fuser then admits
        // only root and the owner, as without it.
        (false, true) => SessionACL::RootAndOwner,
        (false, false) => SessionACL::Owner,
    };
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = opts.threads > 1;
    let notifier = fs.notifier_slot();
    let mut session = Session::new(fs, path, &config).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => FuseError::Mount(format!(
            "permission denied ({e}): mounting needs root, or fusermount3 with user_allow_other in /etc/fuse.conf for --allow-other"
        )),
        ErrorKind::NotFound => FuseError::Mount(format!("{e} (is fusermount3 installed? apt-get install fuse3)")),
        _ => FuseError::Mount(e.to_string()),
    })?;
    let _ = notifier.set(session.notifier());
    let unmounter = session.unmount_callable();
    let thread = std::thread::Builder::new().name("fuse-session".into()).spawn(move || session.run())?;
    Ok(Mounted { path: path.to_path_buf(), unmounter, thread })
}

impl Mounted {
    /// Whether the session ended (someone unmounted it).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Raise the kernel's read-ahead for this mount (its backing device
    /// info), when permitted; the default 128 KiB caps buffered sequential
    /// reads. Best effort.
    pub fn set_read_ahead(&self, kb: u32) {
        if kb == 0 {
            return;
        }
        let Ok(meta) = std::fs::metadata(&self.path) else { return };
        let dev = meta.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let file = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
        if let Err(e) = std::fs::write(&file, kb.to_string()) {
            tracing::info!(error = %e, "kernel read-ahead left at its default");
        }
    }

    /// Unmount (lazily if busy) and wait for the session to end.
    pub fn unmount(mut self) -> Result<(), FuseError> {
        // With auto-unmount this only lets fusermount3 go (it unmounts
        // only a dead file system); otherwise it unmounts.
        if let Err(e) = self.unmounter.unmount() {
            tracing::debug!(error = %e, "session unmount failed");
        }
        if is_mount_point(&self.path) {
            unmount_path(&self.path)?;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if self.thread.is_finished() {
            if let Ok(Err(e)) = self.thread.join() {
                tracing::debug!(error = %e, "session ended with an error");
            }
        }
        Ok(())
    }
}

/// Whether something is mounted at `path` (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        // ENOTCONN and the like: a FUSE mount is there.
        (Err(_), Ok(_)) => true,
        _ => false,
    }
}

/// Unmount `path`: plainly (root), through fusermount3 (other users), and
/// lazily when it is busy.
fn unmount_path(path: &Path) -> Result<(), FuseError> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| FuseError::Mountpoint(path.display().to_string(), "contains a NUL byte".into()))?;
    // fusermount3 (auto-unmount) may briefly hold the directory open as it
    // exits: retry a busy unmount for a moment before detaching lazily.
    let mut err = std::io::Error::from_raw_os_error(libc::EBUSY);
    for _ in 0..10 {
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if err.raw_os_error() == Some(libc::EPERM) {
        if let Ok(o) = Command::new("fusermount3").arg("-u").arg(path).output() {
            if o.status.success() {
                return Ok(());
            }
        }
    }
    tracing::warn!(error = %err, "unmount failed (busy?); detaching lazily");
    detach(path)
}
