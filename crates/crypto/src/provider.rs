//! Where a client's keyring comes from, behind one trait ([`KeyProvider`]):
//!
//! - [`KeyFileProvider`]: the key file (format v1 or v2, mode 0600;
//!   development, and what `admin keys rotate` writes);
//! - [`KeyCommandProvider`]: an external command that prints the key file's
//!   text on its standard output (for a KMS: the command fetches and prints
//!   the keyring; nothing is written to disk). Run without a shell; its
//!   output is parsed strictly and zeroized after. A command that has not
//!   finished within its timeout ([`DEFAULT_KEY_COMMAND_TIMEOUT`] unless
//!   configured) is killed, with every process of its process group, and
//!   the load fails with one error naming the timeout;
//! - [`provider_from`]: picks one from configuration, and refuses clearly
//!   when neither is given — there is no keyless mode.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::{CryptoError, Keyring};

/// Most bytes a key command may print.
const MAX_COMMAND_OUTPUT: u64 = 64 * 1024;
/// How long a key command may run unless configured otherwise.
pub const DEFAULT_KEY_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a running key command is checked on.
const POLL: Duration = Duration::from_millis(10);

/// A source of the client's keyring.
pub trait KeyProvider: Send + Sync {
    /// The keyring as the source holds it now.
    fn load(&self) -> Result<Keyring, CryptoError>;
    /// What the source is, for messages (never key material).
    fn describe(&self) -> String;
    /// The key file behind this source, when it is one (it can be watched
    /// for changes and rotated in place).
    fn key_file(&self) -> Option<&Path> {
        None
    }
}

/// The keyring in a key file.
pub struct KeyFileProvider(pub PathBuf);

impl KeyProvider for KeyFileProvider {
    fn load(&self) -> Result<Keyring, CryptoError> {
        Keyring::load(&self.0)
    }
    fn describe(&self) -> String {
        format!("key file {}", self.0.display())
    }
    fn key_file(&self) -> Option<&Path> {
        Some(&self.0)
    }
}

/// The keyring printed by a command (argv[0] and its arguments, no shell),
/// which must finish within `timeout`.
pub struct KeyCommandProvider {
    pub command: Vec<String>,
    pub timeout: Duration,
}

impl KeyCommandProvider {
    /// `command` with the default timeout.
    pub fn new(command: Vec<String>) -> Self {
        KeyCommandProvider { command, timeout: DEFAULT_KEY_COMMAND_TIMEOUT }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Kill the command's whole process group (it leads one), then reap it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group the
        // child leads (it was started with process_group(0)); no memory is
        // passed.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl KeyProvider for KeyCommandProvider {
    fn load(&self) -> Result<Keyring, CryptoError> {
        let failed = |reason: String| CryptoError::KeyCommand { command: self.describe(), reason };
        let (program, args) = self.command.split_first().ok_or_else(|| failed("no command given".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so a timeout kills what it started too.
            .process_group(0)
            .spawn()
            .map_err(|e| failed(format!("could not start: {e}")))?;
        // Read on a thread, so a command that prints and never exits (or
        // never closes its output) still meets the deadline.
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut out = Zeroizing::new(Vec::new());
                let read = stdout.take(MAX_COMMAND_OUTPUT + 1).read_to_end(&mut out).map(|_| out);
                let _ = tx.send(read);
            });
        }
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    kill_group(&mut child);
                    return Err(failed(format!(
                        "it did not finish within its timeout of {:?} and was killed",
                        self.timeout
                    )));
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => {
                    kill_group(&mut child);
                    return Err(failed(format!("could not wait for it: {e}")));
                }
            }
        };
        // It exited; whatever it started may still hold its output open.
        let left = deadline.saturating_duration_since(Instant::now()).max(POLL);
        let out = match rx.recv_timeout(left) {
            Ok(read) => read.map_err(|e| failed(format!("could not read its output: {e}")))?,
            Err(_) => {
                if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                    // SAFETY: as in kill_group; the group may outlive its leader.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
                return Err(failed(format!(
                    "its output was not closed within its timeout of {:?} (a process it started holds it)",
                    self.timeout
                )));
            }
        };
        if !status.success() {
            return Err(failed(format!("it failed ({status})")));
        }
        if out.len() as u64 > MAX_COMMAND_OUTPUT {
            return Err(failed("its output is too large to be a key file".into()));
        }
        Keyring::parse(Path::new(&format!("output of {}", self.describe())), &out)
    }
    fn describe(&self) -> String {
        format!("key command `{}`", self.command.first().map(String::as_str).unwrap_or(""))
    }
}

/// The provider configuration names: a key command if given (killed after
/// `command_timeout`, default [`DEFAULT_KEY_COMMAND_TIMEOUT`]), else a key
/// file; neither is a clear error (a client never runs without a key).
pub fn provider_from(
    key_file: Option<&Path>,
    key_command: Option<&[String]>,
    command_timeout: Option<Duration>,
) -> Result<Box<dyn KeyProvider>, CryptoError> {
    match (key_command, key_file) {
        (Some(cmd), _) if !cmd.is_empty() => Ok(Box::new(
            KeyCommandProvider::new(cmd.to_vec()).with_timeout(command_timeout.unwrap_or(DEFAULT_KEY_COMMAND_TIMEOUT)),
        )),
        (_, Some(path)) => Ok(Box::new(KeyFileProvider(path.to_owned()))),
        _ => Err(CryptoError::NoKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dek;

    fn sh(script: &str) -> KeyCommandProvider {
        KeyCommandProvider::new(vec!["sh".into(), "-c".into(), script.into()])
    }

    #[test]
    fn a_command_printing_a_keyring_provides_it() {
        let key = "ab".repeat(32);
        let v1 = sh(&format!("printf 'shardline-kek v1\\nid = k1\\nversion = 1\\nkey = {key}\\n'"));
        let ring = v1.load().expect("v1 from a command");
        assert_eq!((ring.id(), ring.versions()), ("k1", vec![1]));
        // The same key from a file gives the same keyring.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        ring.save(&path).expect("save");
        let from_file = provider_from(Some(&path), None, None).expect("file provider");
        assert_eq!(from_file.key_file(), Some(path.as_path()));
        let (v, wrapped) = from_file.load().expect("load").wrap(&Dek::generate(), crate::WrapFormat::V1);
        assert!(ring.unwrap("k1", v, &wrapped, crate::WrapFormat::V1).is_ok());
        // A command wins over a file when both are configured.
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 0".into()];
        assert!(provider_from(Some(&path), Some(&cmd), None).expect("command").key_file().is_none());
    }

    #[test]
    fn failing_or_garbled_commands_and_no_key_are_clear_errors() {
        let err = sh("echo oops >&2; exit 3").load().expect_err("failed command accepted");
        assert!(err.to_string().contains("failed"), "{err}");
        let err = sh("echo 'shardline-kek v1'").load().expect_err("garbage accepted");
        assert!(matches!(err, CryptoError::KeyFileMalformed { .. }), "{err}");
        let err = KeyCommandProvider::new(vec!["/nonexistent/kms-helper".into()]).load().expect_err("missing command");
        assert!(err.to_string().contains("could not start"), "{err}");
        let err = provider_from(None, None, None).err().expect("no key accepted");
        assert!(matches!(err, CryptoError::NoKey), "{err}");
        assert!(provider_from(None, Some(&[]), None).is_err());
    }

    #[test]
    fn a_hanging_command_is_killed_at_its_timeout_with_one_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        // Prints nothing, starts a child that would hold stdout, and hangs.
        let script = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
        let hang = sh(&script).with_timeout(Duration::from_millis(300));
        let err = hang.load().expect_err("a hanging command gave a key");
        let msg = err.to_string();
        assert!(matches!(err, CryptoError::KeyCommand { .. }), "{msg}");
        assert!(msg.contains("timeout") && msg.contains("killed"), "{msg}");
        // What it started was killed with it: its process is gone or a zombie
        // awaiting its (killed) parent's reaper.
        let pid = std::fs::read_to_string(&pid_file).expect("pid written").trim().to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = state.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'));
            if !alive {
                break;
            }
            assert!(Instant::now() < deadline, "the command's child survived its timeout");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Through the configuration too.
        let cmd = vec!["sh".to_string(), "-c".into(), "sleep 600".into()];
        let p = provider_from(None, Some(&cmd), Some(Duration::from_millis(200))).expect("command provider");
        let err = p.load().expect_err("a hanging command gave a key");
        assert!(err.to_string().contains("timeout of 200ms"), "{err}");
    }
}
