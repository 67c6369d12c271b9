//! A keyring: several versions of one key-encryption key, one of them
//! current. New DEKs are wrapped under the current version; a DEK wrapped
//! under any version the keyring still holds unwraps (the version that
//! wrapped it is stored beside it, `WrappedKey.kek_version`, and bound into
//! the wrapping's AAD). Rotation adds a version and re-wraps every file's
//! DEK under it; the old version is retired (dropped) once nothing uses it.
//!
//! On disk, format v2 of the key file (format v1, one key, still loads as a
//! keyring of that one version):
//!
//! ```text
//! shardline-kek v2
//! id = kek-0123456789abcdef
//! current = 2
//! version = 1
//! key = <64 lowercase hex digits>
//! version = 2
//! key = <64 lowercase hex digits>
//! ```
//!
//! Versions are listed in ascending order, each once; `current` is one of
//! them. The file is replaced atomically (a private temporary file, fsynced,
//! renamed over it, the directory fsynced), so a reader sees the old keyring
//! or the new one, never a mix.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rand::{rngs::OsRng, RngCore};
use zeroize::Zeroizing;

use crate::keyfile::{
    malformed, parse, parse_key_line, parse_version, random_hex, read_private, render_version, sync_parent, tmp_path,
    valid_id, write_private,
};
use crate::{CryptoError, Dek, Kek, WrapFormat, KEY_LEN};

/// First line of a keyring file.
pub(crate) const HEADER_V2: &str = "shardline-kek v2";
/// Most versions one keyring holds (retire old ones to add more).
pub const MAX_KEK_VERSIONS: usize = 64;

/// Versions of one KEK id, one of them current. Every key is zeroized on
/// drop; `Debug` shows the id and versions, never a key.
pub struct Keyring {
    id: String,
    current: u32,
    keks: BTreeMap<u32, Kek>,
}

impl Keyring {
    /// A keyring of the one key `kek`, current.
    pub fn from_kek(kek: Kek) -> Keyring {
        Keyring { id: kek.id.clone(), current: kek.version, keks: BTreeMap::from([(kek.version, kek)]) }
    }

    /// A fresh keyring with one random key, version 1.
    pub fn generate(id: &str) -> Keyring {
        Keyring::from_kek(Kek::generate(id))
    }

    /// The KEK id every version shares (recorded beside every wrapped DEK
    /// and bound into every sealed chunk, so it never changes).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The version new DEKs are wrapped under.
    pub fn current_version(&self) -> u32 {
        self.current
    }

    /// The current KEK.
    pub fn current(&self) -> &Kek {
        // `current` is always a key of `keks` (every constructor and
        // mutation keeps it so).
        &self.keks[&self.current]
    }

    /// The versions held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.keks.keys().copied().collect()
    }

    /// Whether version `v` is held.
    pub fn holds(&self, v: u32) -> bool {
        self.keks.contains_key(&v)
    }

    /// Wrap `dek` under the current version in wrap format `format`:
    /// `(version, wrapped)`. Re-wrapping keeps a file's format.
    pub fn wrap(&self, dek: &Dek, format: WrapFormat) -> (u32, Vec<u8>) {
        (self.current, self.current().wrap(dek, format))
    }

    /// Unwrap a DEK wrapped under version `version` of this keyring's id,
    /// in wrap format `format`.
    pub fn unwrap(&self, kek_id: &str, version: u32, wrapped: &[u8], format: WrapFormat) -> Result<Dek, CryptoError> {
        if kek_id != self.id {
            return Err(CryptoError::UnknownKek { kek_id: kek_id.to_owned(), held: self.id.clone() });
        }
        let kek = self.keks.get(&version).ok_or_else(|| CryptoError::UnknownKekVersion {
            kek_id: self.id.clone(),
            version,
            held: self.versions(),
        })?;
        kek.unwrap(wrapped, format)
    }

    /// Add a fresh random version (one above the highest held) and make it
    /// current; the older versions stay, so what they wrap still opens.
    pub fn add_version(&mut self) -> Result<u32, CryptoError> {
        let highest = self.keks.keys().next_back().copied().unwrap_or(0);
        let next = highest
            .checked_add(1)
            .filter(|_| self.keks.len() < MAX_KEK_VERSIONS)
            .ok_or_else(|| CryptoError::KeyringFull { kek_id: self.id.clone(), max: MAX_KEK_VERSIONS })?;
        let mut key = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut key);
        self.keks.insert(next, Kek { id: self.id.clone(), version: next, key });
        self.current = next;
        Ok(next)
    }

    /// Drop version `v` (refused for the current one). What it wrapped no
    /// longer opens: retire a version only once nothing uses it.
    pub fn retire(&mut self, v: u32) -> Result<(), CryptoError> {
        if v == self.current {
            return Err(CryptoError::RetireCurrent { kek_id: self.id.clone(), version: v });
        }
        self.keks.remove(&v);
        Ok(())
    }

    /// Load a key file of format v1 (one key) or v2 (a keyring), with the
    /// same checks as [`Kek::load`]: present, a regular file, mode 0600 or
    /// stricter, well-formed.
    pub fn load(path: &Path) -> Result<Keyring, CryptoError> {
        let text = read_private(path)?;
        Keyring::parse(path, &text)
    }

    /// Parse key-file text of format v1 or v2 (`path` names it in errors).
    pub fn parse(path: &Path, raw: &[u8]) -> Result<Keyring, CryptoError> {
        if raw.starts_with(HEADER_V2.as_bytes()) {
            parse_v2(path, raw)
        } else {
            parse(path, raw).map(Keyring::from_kek)
        }
    }

    /// Replace the key file at `path` with this keyring (format v2), mode
    /// 0600, atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), CryptoError> {
        let io = |action, source| CryptoError::KeyFileIo { action, path: path.to_owned(), source };
        let name = path.file_name().ok_or_else(|| {
            io("write", std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"))
        })?;
        let tmp = tmp_path(path, name);
        let written = write_private(&tmp, self.render().as_bytes()).and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = written {
            // Best effort: the temporary name is never read by anyone.
            let _ = fs::remove_file(&tmp);
            return Err(io("write", e));
        }
        sync_parent(path).map_err(|e| io("sync directory of", e))
    }

    fn render(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(64 + 90 * self.keks.len()));
        text.push_str(HEADER_V2);
        text.push_str("\nid = ");
        text.push_str(&self.id);
        text.push_str("\ncurrent = ");
        text.push_str(&self.current.to_string());
        text.push('\n');
        for kek in self.keks.values() {
            render_version(kek, &mut text);
        }
        text
    }
}

/// Parse format v2 strictly; errors name the line, never its contents.
fn parse_v2(path: &Path, raw: &[u8]) -> Result<Keyring, CryptoError> {
    let text = std::str::from_utf8(raw).map_err(|_| malformed(path, 0, "not UTF-8 text"))?;
    let body = text.strip_suffix('\n').ok_or_else(|| malformed(path, 0, "file does not end with a newline"))?;
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.len() < 5 || (lines.len() - 3) % 2 != 0 {
        return Err(malformed(path, 0, "expected a header, id, current, then `version`/`key` line pairs"));
    }
    if lines[0] != HEADER_V2 {
        return Err(malformed(path, 1, "expected header `shardline-kek v2`"));
    }
    let id = lines[1]
        .strip_prefix("id = ")
        .filter(|id| valid_id(id))
        .ok_or_else(|| malformed(path, 2, "expected `id = <1-128 chars of A-Z a-z 0-9 . _ : ->`"))?;
    let current = lines[2]
        .strip_prefix("current = ")
        .and_then(parse_version)
        .ok_or_else(|| malformed(path, 3, "expected `current = <integer 1..=4294967295>`"))?;
    let pairs = (lines.len() - 3) / 2;
    if pairs > MAX_KEK_VERSIONS {
        return Err(malformed(path, 0, "more key versions than a keyring holds"));
    }
    let mut keks = BTreeMap::new();
    for i in 0..pairs {
        let n = 3 + 2 * i;
        let version = lines[n]
            .strip_prefix("version = ")
            .and_then(parse_version)
            .ok_or_else(|| malformed(path, n + 1, "expected `version = <integer 1..=4294967295>`"))?;
        if keks.keys().next_back().is_some_and(|&last| version <= last) {
            return Err(malformed(path, n + 1, "versions must be listed in ascending order, each once"));
        }
        let key = parse_key_line(path, n + 2, lines[n + 1])?;
        keks.insert(version, Kek { id: id.to_owned(), version, key });
    }
    if !keks.contains_key(&current) {
        return Err(malformed(path, 3, "`current` names a version the file does not hold"));
    }
    Ok(Keyring { id: id.to_owned(), current, keks })
}

impl Keyring {
    /// Load the keyring at `path`, creating a fresh one-key file (format
    /// v1, mode 0600, random id `kek-<16 hex>`) if none exists.
    pub fn load_or_create(path: &Path) -> Result<Keyring, CryptoError> {
        match Keyring::load(path) {
            Err(CryptoError::KeyFileMissing { .. }) => Kek::load_or_create(path).map(Keyring::from_kek),
            other => other,
        }
    }

    /// Load the keyring at `path`, creating a fresh one (format v2, mode
    /// 0600, one random version, id `<prefix>-<16 hex>`) if none exists. An
    /// existing file — v1 or v2, even malformed — is never replaced; a file
    /// created meanwhile by someone else wins.
    pub fn load_or_create_v2(path: &Path, prefix: &str) -> Result<Keyring, CryptoError> {
        match Keyring::load(path) {
            Err(CryptoError::KeyFileMissing { .. }) => {}
            other => return other,
        }
        let io = |action, source| CryptoError::KeyFileIo { action, path: path.to_owned(), source };
        let name = path.file_name().ok_or_else(|| {
            io("create", std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"))
        })?;
        let ring = Keyring::generate(&format!("{prefix}-{}", random_hex(8)));
        let tmp = tmp_path(path, name);
        let linked = write_private(&tmp, ring.render().as_bytes()).and_then(|()| fs::hard_link(&tmp, path));
        // Best effort: the temporary name is never read by anyone.
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_parent(path).map_err(|e| io("sync directory of", e))?;
                Ok(ring)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Keyring::load(path),
            Err(e) => Err(io("create", e)),
        }
    }

    /// Version `v` of the key, if held.
    pub fn kek(&self, v: u32) -> Option<&Kek> {
        self.keks.get(&v)
    }

    /// A random KEK id, as new key files get.
    pub fn random_id() -> String {
        format!("kek-{}", random_hex(8))
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("id", &self.id)
            .field("current", &self.current)
            .field("versions", &self.versions())
            .finish()
    }
}

#[cfg(test)]
#[path = "keyring_tests.rs"]
mod tests;
