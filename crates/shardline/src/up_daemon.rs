//! `shardline up --daemon`: run `up` in the background and return once the
//! cluster is ready, for scripts.
//!
//! The parent starts this same command without `--daemon` in a process
//! group of its own, logging to a file, and hands it the write end of a pipe
//! (`--ready-fd`). The background `up` writes one line on it when start-up
//! ends — `ready`, `unhealthy: …` or `failed: …` — and closes it; if it dies
//! first the parent reads end-of-file. Either way the parent learns the
//! outcome as it happens, without polling.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

use anyhow::{bail, Context, Result};

use crate::cmd_up::UpArgs;

/// Start `up` in the background and wait for its verdict.
pub fn daemonize(args: &UpArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("create {}", args.data_dir.display()))?;
    let log_path = args.log_file.clone().unwrap_or_else(|| args.data_dir.join("up.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open the log file {}", log_path.display()))?;
    let (read_end, write_end) = pipe()?;
    let fd = write_end.as_raw_fd();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).filter(|a| a != "--daemon").collect::<Vec<_>>();
    let argv = strip_log_file(argv);
    let mut cmd = std::process::Command::new(std::env::current_exe().context("find this executable")?);
    cmd.args(argv)
        .args(["--ready-fd", &fd.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    // SAFETY: fcntl is async-signal-safe; between fork and exec it clears
    // close-on-exec on the pipe's write end in the child only, so that the
    // background `up` (and no one else) inherits it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("start the background cluster")?;
    // Only the child holds the write end now: its exit closes the pipe.
    drop(write_end);
    let mut line = String::new();
    BufReader::new(File::from(read_end)).read_line(&mut line).context("wait for the background cluster")?;
    let pid = child.id();
    let line = line.trim_end();
    let see = format!("see {}", log_path.display());
    if line == "ready" {
        let cluster = args.data_dir.canonicalize().unwrap_or_else(|_| args.data_dir.clone()).join("cluster.toml");
        println!("shardline cluster ready (pid {pid}, log {})", log_path.display());
        println!("cluster file: {}  (export SHARDLINE_CLUSTER={0})", cluster.display());
        println!("stop it with: kill {pid}");
        return Ok(());
    }
    if let Some(why) = line.strip_prefix("unhealthy: ") {
        bail!("the cluster (pid {pid}) answers but is not healthy: {why}; it keeps running ({see})");
    }
    if let Some(why) = line.strip_prefix("failed: ") {
        let _ = child.wait();
        bail!("the cluster failed to start: {why} ({see})");
    }
    let status = child.wait().context("wait for the background cluster")?;
    bail!("the background cluster exited ({status}) before it was ready; {see}")
}

/// `--log-file F` / `--log-file=F` belong to the parent only.
fn strip_log_file(argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in argv {
        if skip_next {
            skip_next = false;
            continue;
        }
        if a == "--log-file" {
            skip_next = true;
            continue;
        }
        if a.to_str().is_some_and(|s| s.starts_with("--log-file=")) {
            continue;
        }
        out.push(a);
    }
    out
}

/// A pipe, both ends close-on-exec: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("create a pipe");
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The background `up`'s end of the pipe.
pub struct Notifier(File);

impl Notifier {
    /// Take the descriptor named by `--ready-fd`, keeping it from the
    /// servers this process starts.
    pub fn adopt(fd: i32) -> Result<Notifier> {
        // SAFETY: F_GETFD only reads the descriptor's flags; it fails on a
        // descriptor that is not open, which is refused below.
        if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            bail!("--ready-fd {fd} is not an open descriptor");
        }
        // SAFETY: as above; sets close-on-exec so the servers do not inherit it.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error()).context("set close-on-exec on --ready-fd");
        }
        // SAFETY: the descriptor is open and was handed to this process for
        // its own use (by the --daemon parent); nothing else owns it.
        Ok(Notifier(unsafe { File::from_raw_fd(fd) }))
    }

    /// Tell the parent how start-up ended (one line), and close the pipe.
    pub fn send(mut self, line: &str) {
        let _ = writeln!(self.0, "{}", line.replace('\n', " "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_file_flag_stays_with_the_parent() {
        let argv = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            strip_log_file(argv(&["up", "--log-file", "x.log", "--data", "8", "--log-file=y", "--host", "127.0.0.2"])),
            argv(&["up", "--data", "8", "--host", "127.0.0.2"])
        );
    }
}
