//! `shardline mount`: serve the cluster as a POSIX file system at a mount
//! point, in the foreground, until SIGINT/SIGTERM (then unmount cleanly) or
//! until someone unmounts it. With auto-unmount (the default) fusermount3
//! also unmounts it if this process dies, however it dies.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use shardline_fuse::{FsOptions, MountOptions, ShardlineFs};
use tokio::signal::unix::{signal, SignalKind};

use crate::connect_long_lived;

#[derive(Args, Debug)]
pub struct MountArgs {
    /// Directory to mount on.
    pub mountpoint: PathBuf,
    /// Stay in the foreground (the default and, for now, the only mode:
    /// run it under systemd, a DaemonSet or `&` to background it).
    #[arg(long, default_value_t = true)]
    pub foreground: bool,
    /// Detach: start the mount in the background, return once it is
    /// mounted (its log goes to --log-file).
    #[arg(long, conflicts_with = "unmount_watch")]
    pub daemon: bool,
    /// Where a --daemon mount logs (default: a file in the temp folder).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// How long the kernel caches attributes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub attr_ttl_ms: u64,
    /// How long the kernel caches name lookups, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub entry_ttl_ms: u64,
    /// Threads serving kernel requests (each blocks while its request waits
    /// on the cluster, so this bounds the requests in flight).
    #[arg(long, default_value_t = 16)]
    pub threads: usize,
    /// Let other users use the mount (non-root needs user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    /// Leave the mount behind (reporting ENOTCONN) if this process dies,
    /// instead of having fusermount3 unmount it.
    #[arg(long)]
    pub no_auto_unmount: bool,
    /// Kernel read-ahead for the mount in KiB (0: the kernel's default).
    #[arg(long, default_value_t = 16384)]
    pub read_ahead_kb: u32,
    /// Honour setuid/setgid bits on the mount (default: mounted nosuid).
    #[arg(long)]
    pub suid: bool,
    /// Honour device files on the mount (default: mounted nodev).
    #[arg(long)]
    pub dev: bool,
    /// Serve the mount's Prometheus metrics (operations, bytes, cache hit
    /// rates) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Internal: run as the auto-unmount watcher of the mount process whose
    /// pipe is our stdin.
    #[arg(long, hide = true)]
    pub unmount_watch: bool,
}

pub async fn run(args: MountArgs, cluster: &Option<PathBuf>) -> Result<()> {
    if args.unmount_watch {
        let path = args.mountpoint.clone();
        tokio::task::spawn_blocking(move || shardline_fuse::watch_and_detach(&path)).await?;
        return Ok(());
    }
    shardline_fuse::check_device()?;
    if args.daemon {
        return daemonize(&args);
    }
    shardline_fuse::prepare_mountpoint(&args.mountpoint)?;
    if !args.no_auto_unmount && which("fusermount3").is_none() {
        anyhow::bail!("auto-unmount needs fusermount3 (apt-get install fuse3), or pass --no-auto-unmount");
    }
    let client = connect_long_lived(cluster).await?;
    let metrics = crate::metrics_endpoint::start(args.metrics_listen.as_deref(), None)?;
    let fs_opts = FsOptions {
        attr_ttl: Duration::from_millis(args.attr_ttl_ms),
        entry_ttl: Duration::from_millis(args.entry_ttl_ms),
    };
    let fs = ShardlineFs::new(client, tokio::runtime::Handle::current(), fs_opts);
    let opts = MountOptions {
        threads: args.threads.max(1),
        allow_other: args.allow_other,
        auto_unmount: !args.no_auto_unmount,
        read_ahead_kb: args.read_ahead_kb,
        suid: args.suid,
        dev: args.dev,
    };
    let path = args.mountpoint.clone();
    let mounted = tokio::task::spawn_blocking(move || shardline_fuse::mount(fs, &path, &opts))
        .await?
        .with_context(|| format!("mount on {}", args.mountpoint.display()))?;
    let ra = args.read_ahead_kb;
    let mounted = tokio::task::spawn_blocking(move || {
        mounted.set_read_ahead(ra);
        mounted
    })
    .await?;
    // Detaches the mount if this process dies (see watch_and_detach); it
    // lives in its own process group so that Ctrl-C reaches only us.
    let _watcher = if args.no_auto_unmount {
        None
    } else {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new(std::env::current_exe().context("find this executable")?)
            .args(["mount", "--unmount-watch"])
            .arg(&args.mountpoint)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .context("start the auto-unmount watcher")?;
        Some(child)
    };
    println!("mounted at {}", args.mountpoint.display());
    if let Some(m) = &metrics {
        println!("metrics at http://{}/metrics", m.addr());
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => if mounted.is_finished() {
                eprintln!("unmounted externally; exiting");
                return Ok(());
            },
        }
    }
    tokio::task::spawn_blocking(move || mounted.unmount()).await??;
    eprintln!("unmounted {}", args.mountpoint.display());
    Ok(())
}

/// Start this same command without --daemon in a new session, logging to a
/// file, and wait until the mount appears (or the child fails).
fn daemonize(args: &MountArgs) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let log_path = args.log_file.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("shardline-mount-{}-{}.log", std::process::id(), rand::random::<u32>()))
    });
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open the log file {}", log_path.display()))?;
    let parent_dev = std::fs::metadata(&args.mountpoint)
        .with_context(|| format!("mount point {}", args.mountpoint.display()))?
        .dev();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).filter(|a| a != "--daemon").collect();
    let mut child = std::process::Command::new(std::env::current_exe().context("find this executable")?)
        .args(argv)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("start the background mount")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if std::fs::metadata(&args.mountpoint).map(|m| m.dev() != parent_dev).unwrap_or(false) {
            println!("mounted at {} (pid {}, log {})", args.mountpoint.display(), child.id(), log_path.display());
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the background mount exited ({status}); see {}", log_path.display());
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("the mount did not appear within 60 s; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(bin)).find(|p| p.is_file())
}
