//! The nemesis' FUSE mount: `shardline --cluster mount.toml mount DIR
//! --foreground`, a child process the nemesis can SIGKILL and start again
//! (the next mount detaches a dead one first).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Mount {
    bin: PathBuf,
    cluster_file: PathBuf,
    pub path: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Whether this machine can mount FUSE file systems (/dev/fuse and
/// fusermount3); why not otherwise.
pub fn available() -> Result<()> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").context("open /dev/fuse")?;
    Command::new("fusermount3").arg("-V").output().context("run fusermount3 (package fuse3)")?;
    Ok(())
}

fn dev_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.dev())
}

impl Mount {
    pub fn new(bin: &Path, cluster_file: &Path, dir: &Path) -> Result<Mount> {
        let path = dir.join("mnt");
        std::fs::create_dir_all(&path)?;
        Ok(Mount {
            bin: bin.to_path_buf(),
            cluster_file: cluster_file.to_path_buf(),
            path,
            log: dir.join("mount.log"),
            child: None,
        })
    }

    /// Start the mount and wait until it serves the mount point.
    pub fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--cluster")
            .arg(&self.cluster_file)
            .arg("mount")
            .arg(&self.path)
            .args(["--foreground", "--attr-ttl-ms", "1000", "--entry-ttl-ms", "1000"])
            .env("SHARDLINE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the mount dies with the nemesis.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("start shardline mount")?;
        let parent = dev_of(self.path.parent().context("mount point parent")?).context("stat parent")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if dev_of(&self.path).is_some_and(|d| d != parent) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("shardline mount exited ({status}); see {}", self.log.display());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the mount did not appear; see {}", self.log.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL the mount process, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Unmount cleanly (SIGTERM), then make sure nothing is left mounted.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.path).stderr(Stdio::null()).status();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
    }
}
