//! Where a client's keyring comes from, behind one trait ([`KeyProvider`]):
//!
//! - [`KeyFileProvider`]: the key file (format v1 or v2, mode 0600;
//!   development, and what `admin keys rotate` writes);
//! - [`KeyCommandProvider`]: an external command that prints the key file's
//!   text on its standard output (for a KMS: the command fetches and prints
//!   the keyring; nothing is written to disk). Run without a shell; its
//!   output is parsed strictly and zeroized after;
//! - [`provider_from`]: picks one from configuration, and refuses clearly
//!   when neither is given — there is no keyless mode.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use crate::{CryptoError, Keyring};

/// Most bytes a key command may print.
const MAX_COMMAND_OUTPUT: u64 = 64 * 1024;

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

/// The keyring printed by a command (argv[0] and its arguments, no shell).
pub struct KeyCommandProvider(pub Vec<String>);

impl KeyProvider for KeyCommandProvider {
    fn load(&self) -> Result<Keyring, CryptoError> {
        let failed = |reason: String| CryptoError::KeyCommand { command: self.describe(), reason };
        let (program, args) = self.0.split_first().ok_or_else(|| failed("no command given".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| failed(format!("could not start: {e}")))?;
        let mut out = Zeroizing::new(Vec::new());
        let read = match child.stdout.take() {
            Some(stdout) => stdout.take(MAX_COMMAND_OUTPUT + 1).read_to_end(&mut out).map(|_| ()),
            None => Ok(()),
        };
        let status = child.wait().map_err(|e| failed(format!("could not wait for it: {e}")))?;
        read.map_err(|e| failed(format!("could not read its output: {e}")))?;
        if !status.success() {
            return Err(failed(format!("it failed ({status})")));
        }
        if out.len() as u64 > MAX_COMMAND_OUTPUT {
            return Err(failed("its output is too large to be a key file".into()));
        }
        Keyring::parse(Path::new(&format!("output of {}", self.describe())), &out)
    }
    fn describe(&self) -> String {
        format!("key command `{}`", self.0.first().map(String::as_str).unwrap_or(""))
    }
}

/// The provider configuration names: a key command if given, else a key
/// file; neither is a clear error (a client never runs without a key).
pub fn provider_from(
    key_file: Option<&Path>,
    key_command: Option<&[String]>,
) -> Result<Box<dyn KeyProvider>, CryptoError> {
    match (key_command, key_file) {
        (Some(cmd), _) if !cmd.is_empty() => Ok(Box::new(KeyCommandProvider(cmd.to_vec()))),
        (_, Some(path)) => Ok(Box::new(KeyFileProvider(path.to_owned()))),
        _ => Err(CryptoError::NoKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dek;

    fn sh(script: &str) -> KeyCommandProvider {
        KeyCommandProvider(vec!["sh".into(), "-c".into(), script.into()])
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
        let from_file = provider_from(Some(&path), None).expect("file provider");
        assert_eq!(from_file.key_file(), Some(path.as_path()));
        let (v, wrapped) = from_file.load().expect("load").wrap(&Dek::generate(), crate::WrapFormat::V1);
        assert!(ring.unwrap("k1", v, &wrapped, crate::WrapFormat::V1).is_ok());
        // A command wins over a file when both are configured.
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 0".into()];
        assert!(provider_from(Some(&path), Some(&cmd)).expect("command").key_file().is_none());
    }

    #[test]
    fn failing_or_garbled_commands_and_no_key_are_clear_errors() {
        let err = sh("echo oops >&2; exit 3").load().expect_err("failed command accepted");
        assert!(err.to_string().contains("failed"), "{err}");
        let err = sh("echo 'shardline-kek v1'").load().expect_err("garbage accepted");
        assert!(matches!(err, CryptoError::KeyFileMalformed { .. }), "{err}");
        let err = KeyCommandProvider(vec!["/nonexistent/kms-helper".into()]).load().expect_err("missing command");
        assert!(err.to_string().contains("could not start"), "{err}");
        let err = provider_from(None, None).err().expect("no key accepted");
        assert!(matches!(err, CryptoError::NoKey), "{err}");
        assert!(provider_from(None, Some(&[])).is_err());
    }
}
