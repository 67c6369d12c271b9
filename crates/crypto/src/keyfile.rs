//! The development key provider: a KEK in a small, strictly parsed text file.
//!
//! ```text
//! shardline-kek v1
//! id = kek-0123456789abcdef
//! version = 1
//! key = <64 lowercase hex digits>
//! ```
//!
//! The file must be mode 0600 (or stricter). It is created atomically — written
//! to a private temporary file, then hard-linked into place, which fails rather
//! than overwrite an existing key — so a reader never sees a half-written key.
//!
//! A client's key file may also be a keyring of several versions of one KEK
//! (`shardline-kek v2`, `keyring.rs`); [`Kek::load`] reads format v1 only
//! (the metadata servers' and capability keys), `Keyring::load` reads both.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::{rngs::OsRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::{CryptoError, Kek, KEY_LEN};

const HEADER: &str = "shardline-kek v1";
/// Anything larger is not a key file; refuse before reading it all (a
/// keyring of many versions included).
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;
const MAX_ID_LEN: usize = 128;

impl Kek {
    /// Load the KEK from `path`, creating it (mode 0600, with a random key and
    /// id `kek-<16 hex>`) if it does not exist. An existing file is never
    /// overwritten, even if it is malformed: that is reported as an error.
    pub fn load_or_create(path: &Path) -> Result<Kek, CryptoError> {
        match Kek::load(path) {
            Err(CryptoError::KeyFileMissing { .. }) => create(path),
            other => other,
        }
    }

    /// Load the KEK from `path` (format v1). Fails clearly if the file is
    /// missing, malformed, or accessible to group or others.
    pub fn load(path: &Path) -> Result<Kek, CryptoError> {
        let text = read_private(path)?;
        parse(path, &text)
    }
}

/// The bytes of the key file at `path`, refused when it is missing, not a
/// regular file, accessible to group or others, or too large.
pub(crate) fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let io = |action, source| CryptoError::KeyFileIo { action, path: path.to_owned(), source };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CryptoError::KeyFileMissing { path: path.to_owned() })
        }
        Err(e) => return Err(io("open", e)),
    };
    let meta = file.metadata().map_err(|e| io("stat", e))?;
    if !meta.is_file() {
        return Err(malformed(path, 0, "not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::KeyFileInsecure { path: path.to_owned(), mode });
    }
    check_owner_and_dir(path, &meta)?;
    let mut text = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_LEN + 1).read_to_end(&mut text).map_err(|e| io("read", e))?;
    if text.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(malformed(path, 0, "file is too large to be a key file"));
    }
    Ok(text)
}

/// The key file must belong to this user (or root), and its directory
/// must not let any user replace it: not world-writable unless sticky (as
/// /tmp). A group-writable directory is allowed (user-private groups with
/// umask 002 make every directory so).
fn check_owner_and_dir(path: &Path, meta: &fs::Metadata) -> Result<(), CryptoError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(CryptoError::KeyFileOwner { path: path.to_owned(), owner: meta.uid(), me });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dmeta = fs::metadata(dir).map_err(|source| CryptoError::KeyFileIo {
        action: "stat the directory of",
        path: path.to_owned(),
        source,
    })?;
    let dmode = dmeta.permissions().mode() & 0o7777;
    if dmode & 0o002 != 0 && dmode & 0o1000 == 0 {
        return Err(CryptoError::KeyDirInsecure { dir: dir.to_owned(), mode: dmode });
    }
    Ok(())
}

/// Write a fresh KEK to `path` without ever replacing an existing file.
fn create(path: &Path) -> Result<Kek, CryptoError> {
    let io = |action, source| CryptoError::KeyFileIo { action, path: path.to_owned(), source };
    let name = path
        .file_name()
        .ok_or_else(|| io("create", std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")))?;
    let kek = Kek::generate(&format!("kek-{}", random_hex(8)));
    let text = render(&kek);

    let tmp = tmp_path(path, name);
    let written = write_private(&tmp, text.as_bytes());
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    // Best effort: the temporary name is never read by anyone.
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path).map_err(|e| io("sync directory of", e))?;
            Ok(kek)
        }
        // Someone else created it first: theirs wins.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Kek::load(path),
        Err(e) => Err(io("create", e)),
    }
}

/// A private temporary name beside `path` (`.<name>.tmp-<random>`).
pub(crate) fn tmp_path(path: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", random_hex(8)));
    path.with_file_name(tmp_name)
}

/// Create `path` exclusively with mode 0600, write `bytes`, fsync.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn render(kek: &Kek) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(160));
    text.push_str(HEADER);
    text.push_str("\nid = ");
    text.push_str(&kek.id);
    text.push('\n');
    render_version(kek, &mut text);
    text
}

/// `version = N\nkey = <hex>\n`.
pub(crate) fn render_version(kek: &Kek, text: &mut String) {
    text.push_str("version = ");
    text.push_str(&kek.version.to_string());
    text.push_str("\nkey = ");
    for b in kek.key {
        text.push(hex_digit(b >> 4));
        text.push(hex_digit(b & 0xf));
    }
    text.push('\n');
}

pub(crate) fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0xf)])
}

pub(crate) fn malformed(path: &Path, line: usize, reason: &str) -> CryptoError {
    CryptoError::KeyFileMalformed { path: PathBuf::from(path), line, reason: reason.to_owned() }
}

/// Parse the exact four-line format; anything else is an error that names the
/// line but never echoes its contents (it may hold key bytes).
pub(crate) fn parse(path: &Path, raw: &[u8]) -> Result<Kek, CryptoError> {
    let text = std::str::from_utf8(raw).map_err(|_| malformed(path, 0, "not UTF-8 text"))?;
    let body = text.strip_suffix('\n').ok_or_else(|| malformed(path, 0, "file does not end with a newline"))?;
    let lines: Vec<&str> = body.split('\n').collect();
    if lines[0] == crate::keyring::HEADER_V2 {
        return Err(malformed(path, 1, "a keyring (`shardline-kek v2`) where one key (`shardline-kek v1`) is needed"));
    }
    if lines.len() != 4 {
        return Err(malformed(path, 0, "expected exactly 4 lines"));
    }
    if lines[0] != HEADER {
        return Err(malformed(path, 1, "expected header `shardline-kek v1`"));
    }
    let id = lines[1]
        .strip_prefix("id = ")
        .filter(|id| valid_id(id))
        .ok_or_else(|| malformed(path, 2, "expected `id = <1-128 chars of A-Z a-z 0-9 . _ : ->`"))?;
    let version = lines[2]
        .strip_prefix("version = ")
        .and_then(parse_version)
        .ok_or_else(|| malformed(path, 3, "expected `version = <integer 1..=4294967295>`"))?;
    let key = parse_key_line(path, 4, lines[3])?;
    Ok(Kek { id: id.to_owned(), version, key })
}

/// `key = <64 lowercase hex digits>` on line `n`, never echoed.
pub(crate) fn parse_key_line(path: &Path, n: usize, line: &str) -> Result<[u8; KEY_LEN], CryptoError> {
    let hex =
        line.strip_prefix("key = ").ok_or_else(|| malformed(path, n, "expected `key = <64 lowercase hex digits>`"))?;
    let mut key = [0u8; KEY_LEN];
    if !decode_hex(hex, &mut key) {
        key.zeroize();
        return Err(malformed(path, n, "expected `key = <64 lowercase hex digits>`"));
    }
    Ok(key)
}

pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

pub(crate) fn parse_version(s: &str) -> Option<u32> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    canonical.then(|| s.parse().ok()).flatten()
}

pub(crate) fn decode_hex(hex: &str, out: &mut [u8; KEY_LEN]) -> bool {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let hex = hex.as_bytes();
    if hex.len() != KEY_LEN * 2 {
        return false;
    }
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => *byte = hi << 4 | lo,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dek;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn created_with_mode_0600_and_reloads_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        let created = Kek::load_or_create(&path).expect("create");
        assert_eq!(mode_of(&path), 0o600);
        let loaded = Kek::load(&path).expect("load");
        assert_eq!(loaded.id(), created.id());
        assert_eq!(loaded.version(), 1);
        assert_eq!(loaded.key, created.key);
        // A DEK wrapped before reload unwraps after it.
        let dek = Dek::generate();
        assert!(loaded.unwrap(&created.wrap(&dek, crate::WrapFormat::V1), crate::WrapFormat::V1).is_ok());
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("readdir").count(), 1);
    }

    #[test]
    fn load_or_create_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        let first = Kek::load_or_create(&path).expect("create");
        let before = fs::read(&path).expect("read");
        let second = Kek::load_or_create(&path).expect("load");
        assert_eq!(first.key, second.key);
        assert_eq!(fs::read(&path).expect("read"), before);

        let garbled = dir.path().join("garbled");
        write_private(&garbled, b"not a key\n").expect("write");
        assert!(matches!(Kek::load_or_create(&garbled), Err(CryptoError::KeyFileMalformed { .. })));
        assert_eq!(fs::read(&garbled).expect("read"), b"not a key\n");
    }

    #[test]
    fn group_or_world_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        Kek::load_or_create(&path).expect("create");
        for mode in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let err = Kek::load(&path).expect_err("insecure key accepted");
            assert!(matches!(err, CryptoError::KeyFileInsecure { .. }), "{err}");
            assert!(Kek::load_or_create(&path).is_err());
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
        assert!(Kek::load(&path).is_ok());
    }

    #[test]
    fn a_key_file_in_a_directory_others_may_write_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        Kek::load_or_create(&path).expect("create");
        for (mode, ok) in [(0o777, false), (0o757, false), (0o1777, true), (0o775, true), (0o755, true)] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).expect("chmod dir");
            let loaded = Kek::load(&path);
            assert_eq!(loaded.is_ok(), ok, "directory mode {mode:o}: {:?}", loaded.err());
            if !ok {
                let err = loaded.expect_err("refused");
                assert!(matches!(err, CryptoError::KeyDirInsecure { .. }), "{err}");
            }
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod dir");
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Kek::load(&dir.path().join("nope")).expect_err("missing accepted");
        assert!(matches!(err, CryptoError::KeyFileMissing { .. }));
        assert!(err.to_string().contains("does not exist"));
    }

    #[test]
    fn render_parse_round_trip() {
        let kek = Kek::generate("kek-x.y_z:1");
        let back = parse(Path::new("k"), render(&kek).as_bytes()).expect("parse");
        assert_eq!((back.id(), back.version(), back.key), (kek.id(), 1, kek.key));
    }

    #[test]
    fn garbled_files_are_rejected_without_echoing_contents() {
        let key = "ab".repeat(32);
        let good = format!("shardline-kek v1\nid = k1\nversion = 3\nkey = {key}\n");
        assert_eq!(parse(Path::new("k"), good.as_bytes()).expect("good").version(), 3);
        let bad = [
            String::new(),
            good.trim_end().to_owned(),
            good.replace("v1", "v2"),
            good.replace("id = k1", "id = "),
            good.replace("id = k1", "id = k 1"),
            good.replace("id = k1", "id=k1"),
            good.replace("version = 3", "version = 03"),
            good.replace("version = 3", "version = 0"),
            good.replace("version = 3", "version = +3"),
            good.replace("version = 3", "version = 4294967296"),
            good.replace(&key, &key[..62]),
            good.replace(&key, &key.to_uppercase()),
            good.replace(&key, &format!("{key}00")),
            good.replace(&key, &"zz".repeat(32)),
            good.replace('\n', "\r\n"),
            format!("{good}extra\n"),
            format!("{good}\n"),
        ];
        for text in bad {
            let err = parse(Path::new("k"), text.as_bytes()).expect_err(&text);
            assert!(!err.to_string().contains("abab"), "error echoes key: {err}");
        }
        assert!(parse(Path::new("k"), &[0xff, 0xfe]).is_err());
    }
}
