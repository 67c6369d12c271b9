//! The client's keyring (`shardline_crypto::Keyring`), read from its key
//! file and read again when the file changes: key rotation
//! (`shardline admin keys rotate`) adds a version to the file while clients
//! run, and files re-wrapped under it must keep opening. Before each use the
//! file's identity (inode, size, modification time) is compared with the
//! one loaded — one `stat` — and a changed file is loaded again, so new files
//! are wrapped under the newest current version and a re-wrapped file opens.
//! A file that has become unreadable or malformed keeps the keyring held
//! (with a warning); it never replaces a good one.
//!
//! The keyring may instead come from a key command (a KMS helper,
//! `shardline_crypto::KeyCommandProvider`): it is run at start and again
//! when a file names a version the keyring held lacks ([`ClientKeys::reload`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use shardline_crypto::{provider_from, CryptoError, KeyProvider, Keyring};

/// What identifies one version of the key file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// The keyring of one key file, reloaded when the file changes.
pub(crate) struct ClientKeys {
    provider: Box<dyn KeyProvider>,
    /// The key file watched for changes (None for a key command).
    path: Option<PathBuf>,
    held: RwLock<(Arc<Keyring>, Option<Stamp>)>,
}

impl ClientKeys {
    /// Load the keyring from `key_command` if given (killed after
    /// `command_timeout`), else from the key file (format v1 or v2); a
    /// missing, insecure or malformed file, or a failing or hanging
    /// command, is an error.
    pub fn load(
        key_file: &Path,
        key_command: Option<&[String]>,
        command_timeout: Option<std::time::Duration>,
    ) -> Result<ClientKeys, CryptoError> {
        let provider = provider_from(Some(key_file), key_command, command_timeout)?;
        let path = provider.key_file().map(Path::to_owned);
        let before = path.as_deref().and_then(stamp);
        let ring = provider.load()?;
        Ok(ClientKeys { provider, path, held: RwLock::new((Arc::new(ring), before)) })
    }

    /// Load the keyring again now (a file names a version it lacks): a key
    /// command is run again. Failure keeps the keyring held.
    pub fn reload(&self) -> Arc<Keyring> {
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        let now = self.path.as_deref().and_then(stamp);
        match self.provider.load() {
            Ok(ring) if ring.id() == held.0.id() => *held = (Arc::new(ring), now),
            Ok(_) => tracing::warn!(source = %self.provider.describe(), "keyring changed to another key id: ignored"),
            Err(e) => tracing::warn!(error = %e, "keyring could not be loaded again: keeping the one held"),
        }
        held.0.clone()
    }

    /// The keyring as the key file holds it now.
    pub fn ring(&self) -> Arc<Keyring> {
        let Some(path) = self.path.as_deref() else {
            return self.held.read().unwrap_or_else(|e| e.into_inner()).0.clone();
        };
        let now = stamp(path);
        {
            let held = self.held.read().unwrap_or_else(|e| e.into_inner());
            if now.is_none() || held.1 == now {
                return held.0.clone();
            }
        }
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        if held.1 == now {
            return held.0.clone();
        }
        match self.provider.load() {
            Ok(ring) if ring.id() == held.0.id() => {
                tracing::info!(current = ring.current_version(), versions = ?ring.versions(), "key file changed: keyring reloaded");
                *held = (Arc::new(ring), now);
            }
            Ok(_) => {
                tracing::warn!("key file changed to another key id: keeping the keyring loaded at start");
                held.1 = now;
            }
            Err(e) => tracing::warn!(error = %e, "key file changed but could not be read: keeping the keyring held"),
        }
        held.0.clone()
    }
}
