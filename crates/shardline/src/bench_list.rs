//! The listing rows of `shardline bench`: a directory of many entries
//! (empty files made through the native client, 32 creates in flight),
//! listed through the mount by one thread: by readdir alone; readdir and an
//! lstat of every entry; and as GNU `ls -l` does, which also asks each
//! entry for two extended attributes (`security.selinux` and
//! `system.posix_acl_access`, each a FUSE request the kernel does not
//! cache). Each listing runs on a fresh mount, so none is served from what
//! another loaded (an untimed stat of the directory itself first opens the
//! mount's connections).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use shardline_client::inode_api::NewFile;
use shardline_client::Client;
use tokio::task::JoinSet;

/// Creates in flight while making the directory.
const IN_FLIGHT: usize = 32;

/// Make `dir` (a path in the namespace) with `n` empty files: creates per
/// second.
pub async fn make(client: &Client, dir: &str, n: usize) -> Result<f64> {
    let ino = client.mkdir(dir).await?.ino;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (inodes, next) = (client.inodes(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), shardline_client::ClientError>(());
                }
                inodes.create(NewFile::new(ino, format!("entry-{i:07}"))).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("create task")?.context("create the entries to list")?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Entries per second of the three listings of [`through_mount`].
pub struct Listings {
    pub readdir: f64,
    pub stat: f64,
    pub gnu_ls_l: f64,
}

/// What a listing asks of each entry.
#[derive(Clone, Copy, PartialEq)]
enum Probe {
    Name,
    Stat,
    /// lstat, then the two getxattr calls of GNU `ls -l` (coreutils 9).
    StatXattrs,
}

/// List `rel` (holding `n` entries) through fresh mounts: readdir alone,
/// readdir + lstat of each entry, and as GNU `ls -l`. Blocking: call it off
/// the runtime.
pub fn through_mount(cluster_file: &Path, mnt: &Path, rel: &str, n: usize) -> Result<Listings> {
    let mut rates = [0.0; 3];
    for (rate, probe) in rates.iter_mut().zip([Probe::Name, Probe::Stat, Probe::StatXattrs]) {
        let m = crate::bench_fuse::Mount::start(cluster_file, mnt)?;
        *rate = list(&m.dir.join(rel), n, probe)?;
    }
    Ok(Listings { readdir: rates[0], stat: rates[1], gnu_ls_l: rates[2] })
}

/// Entries per second listing `dir`, asking each entry what `probe` says.
fn list(dir: &Path, n: usize, probe: Probe) -> Result<f64> {
    // Untimed: the path's lookups and the fresh mount's first connections.
    std::fs::metadata(dir).context("stat the listed directory through the mount")?;
    let start = Instant::now();
    let mut seen = 0;
    for e in std::fs::read_dir(dir).context("list through the mount")? {
        let e = e.context("read a directory entry through the mount")?;
        if probe != Probe::Name {
            // `DirEntry::metadata` is fstatat(AT_SYMLINK_NOFOLLOW), as ls -l.
            std::hint::black_box(e.metadata().context("stat an entry through the mount")?);
        }
        if probe == Probe::StatXattrs {
            ask_xattrs_as_ls(&e.path())?;
        }
        seen += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    if seen != n {
        bail!("listed {seen} entries through the mount, expected {n}");
    }
    Ok(n as f64 / secs)
}

/// GNU ls -l's two questions per entry: its SELinux label (not following a
/// symlink) and whether it has an access ACL. "None" (ENODATA) is the
/// expected answer; anything else but a value is an error.
fn ask_xattrs_as_ls(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).context("entry path with a NUL")?;
    let mut label = [0u8; 255];
    // SAFETY: `c` is a NUL-terminated path and `label` a writable buffer of
    // the length passed; a null value buffer with size 0 asks for the size.
    let (selinux, acl) = unsafe {
        (
            libc::lgetxattr(c.as_ptr(), c"security.selinux".as_ptr(), label.as_mut_ptr().cast(), label.len()),
            libc::getxattr(c.as_ptr(), c"system.posix_acl_access".as_ptr(), std::ptr::null_mut(), 0),
        )
    };
    for r in [selinux, acl] {
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENODATA) {
                return Err(e).context("getxattr of an entry through the mount");
            }
        }
    }
    Ok(())
}
