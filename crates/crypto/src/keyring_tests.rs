//! Tests of the keyring and its file format (v2, and v1 still loading).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn a_v1_key_file_loads_as_a_keyring_of_one_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kek");
    let kek = Kek::load_or_create(&path).expect("create v1");
    assert!(fs::read_to_string(&path).expect("read").starts_with("shardline-kek v1\n"));
    let wrapped = kek.wrap(&Dek::generate(), crate::WrapFormat::V1);
    let ring = Keyring::load(&path).expect("load v1 as keyring");
    assert_eq!((ring.id(), ring.current_version(), ring.versions()), (kek.id(), 1, vec![1]));
    assert!(ring.unwrap(kek.id(), 1, &wrapped, crate::WrapFormat::V1).is_ok());

    // A v1 file of another version number keeps it.
    let key = "ab".repeat(32);
    let text = format!("shardline-kek v1\nid = k1\nversion = 7\nkey = {key}\n");
    let ring = Keyring::parse(Path::new("k"), text.as_bytes()).expect("parse");
    assert_eq!((ring.current_version(), ring.versions()), (7, vec![7]));
}

#[test]
fn multi_version_round_trip_through_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kek");
    let mut ring = Keyring::load_or_create(&path).expect("create");
    assert_eq!(ring.add_version().expect("add"), 2);
    assert_eq!(ring.add_version().expect("add"), 3);
    ring.save(&path).expect("save");
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(fs::read_dir(dir.path()).expect("readdir").count(), 1, "temporary file left behind");
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.starts_with("shardline-kek v2\n") && text.contains("\ncurrent = 3\n"), "{}", text.lines().count());

    let back = Keyring::load(&path).expect("load v2");
    assert_eq!((back.id(), back.current_version(), back.versions()), (ring.id(), 3, vec![1, 2, 3]));
    for v in [1, 2, 3] {
        assert_eq!(back.keks[&v].key, ring.keks[&v].key, "version {v} changed");
    }
    // New DEKs wrap under the current version.
    let dek = Dek::generate();
    let (v, wrapped) = back.wrap(&dek, crate::WrapFormat::V1);
    assert_eq!(v, 3);
    assert_eq!(ring.unwrap(ring.id(), 3, &wrapped, crate::WrapFormat::V1).expect("unwrap").as_bytes(), dek.as_bytes());
    // The metadata key loader refuses a keyring clearly.
    let err = Kek::load(&path).expect_err("v2 accepted as one key");
    assert!(err.to_string().contains("keyring"), "{err}");
}

#[test]
fn a_dek_wrapped_under_v1_opens_after_rotation_to_v2_until_v1_is_retired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kek");
    let ring = Keyring::load_or_create(&path).expect("create v1 file");
    let dek = Dek::generate();
    let (v1, old_wrapped) = ring.wrap(&dek, crate::WrapFormat::V1);
    assert_eq!(v1, 1);

    // Rotate: a new version, saved beside the old one.
    let mut ring = Keyring::load(&path).expect("load");
    ring.add_version().expect("add");
    ring.save(&path).expect("save");
    let ring = Keyring::load(&path).expect("reload");
    assert_eq!(ring.current_version(), 2);
    let opened = ring.unwrap(ring.id(), 1, &old_wrapped, crate::WrapFormat::V1).expect("v1 DEK after rotation");
    assert_eq!(opened.as_bytes(), dek.as_bytes());
    // Re-wrapped under v2 it opens there, and not as version 1.
    let (v2, new_wrapped) = ring.wrap(&opened, crate::WrapFormat::V1);
    assert_eq!(v2, 2);
    assert_eq!(ring.unwrap(ring.id(), 2, &new_wrapped, crate::WrapFormat::V1).expect("v2").as_bytes(), dek.as_bytes());
    assert!(
        ring.unwrap(ring.id(), 1, &new_wrapped, crate::WrapFormat::V1).is_err(),
        "the version is bound into the wrapping"
    );

    // Retired: version 1 is gone from the file; what it wrapped no longer opens.
    let mut ring = ring;
    assert!(matches!(ring.retire(2), Err(CryptoError::RetireCurrent { .. })));
    ring.retire(1).expect("retire");
    ring.save(&path).expect("save");
    let ring = Keyring::load(&path).expect("reload");
    assert_eq!(ring.versions(), vec![2]);
    let err = ring.unwrap(ring.id(), 1, &old_wrapped, crate::WrapFormat::V1).expect_err("retired version opened");
    assert!(matches!(err, CryptoError::UnknownKekVersion { version: 1, .. }), "{err}");
    assert!(matches!(
        ring.unwrap("other-id", 2, &new_wrapped, crate::WrapFormat::V1),
        Err(CryptoError::UnknownKek { .. })
    ));
}

#[test]
fn a_saved_keyring_file_is_checked_like_a_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kek");
    let mut ring = Keyring::generate("k1");
    ring.add_version().expect("add");
    ring.save(&path).expect("save");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(Keyring::load(&path), Err(CryptoError::KeyFileInsecure { .. })));
    assert!(matches!(Keyring::load(&dir.path().join("nope")), Err(CryptoError::KeyFileMissing { .. })));
}

#[test]
fn garbled_keyrings_are_rejected_without_echoing_contents() {
    let (a, b) = ("ab".repeat(32), "cd".repeat(32));
    let good = format!("shardline-kek v2\nid = k1\ncurrent = 2\nversion = 1\nkey = {a}\nversion = 2\nkey = {b}\n");
    let ring = Keyring::parse(Path::new("k"), good.as_bytes()).expect("good");
    assert_eq!((ring.current_version(), ring.versions()), (2, vec![1, 2]));
    let bad = [
        good.trim_end().to_owned(),
        good.replace("current = 2", "current = 3"),
        good.replace("current = 2", "current = 02"),
        good.replace("current = 2\n", ""),
        good.replace("version = 2", "version = 1"),
        good.replace("version = 1", "version = 3"),
        good.replace(&format!("version = 2\nkey = {b}\n"), "version = 2\n"),
        good.replace(&b, &b[..60]),
        good.replace("id = k1", "id = k 1"),
        format!("{good}version = 3\n"),
        "shardline-kek v2\nid = k1\ncurrent = 1\n".to_owned(),
    ];
    for text in bad {
        let err = Keyring::parse(Path::new("k"), text.as_bytes()).expect_err(&text);
        assert!(!err.to_string().contains("abab") && !err.to_string().contains("cdcd"), "error echoes key: {err}");
    }
}

#[test]
fn debug_shows_versions_but_no_key() {
    let mut ring = Keyring::from_kek(Kek { id: "k1".into(), version: 1, key: [0xcd; KEY_LEN] });
    ring.add_version().expect("add");
    let shown = format!("{ring:?}");
    assert!(shown.contains("k1") && shown.contains("[1, 2]"), "{shown}");
    assert!(!shown.contains("cd") && !shown.contains("205"), "{shown}");
}

#[test]
fn load_or_create_v2_makes_a_v2_file_once_and_never_replaces_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.key");
    let made = Keyring::load_or_create_v2(&path, "meta").expect("create");
    assert!(made.id().starts_with("meta-") && made.id().len() == "meta-".len() + 16, "{}", made.id());
    assert_eq!(mode_of(&path), 0o600);
    assert!(std::fs::read_to_string(&path).expect("read").starts_with("shardline-kek v2\nid = meta-"));
    let again = Keyring::load_or_create_v2(&path, "meta").expect("load");
    assert_eq!((again.id(), again.versions()), (made.id(), vec![1]));
    assert_eq!(again.kek(1).expect("v1").key, made.kek(1).expect("v1").key);
    assert!(again.kek(2).is_none());
    // A v1 file already there stays as it is.
    let v1 = dir.path().join("old.key");
    let kek = Kek::load_or_create(&v1).expect("v1");
    let before = std::fs::read(&v1).expect("read");
    assert_eq!(Keyring::load_or_create_v2(&v1, "meta").expect("v1 loads").id(), kek.id());
    assert_eq!(std::fs::read(&v1).expect("read"), before);
    assert_eq!(std::fs::read_dir(dir.path()).expect("readdir").count(), 2, "no temporary files left");
}

#[test]
fn re_wrapping_under_a_new_version_keeps_wrap_format_2() {
    use crate::WrapFormat;
    let mut ring = Keyring::generate("kek-m");
    let dek = Dek::generate();
    let (v1, old) = ring.wrap(&dek, WrapFormat::V2);
    ring.add_version().expect("add version");
    // What `admin keys rotate` does: unwrap in the file's format, wrap in it again.
    let opened = ring.unwrap(ring.id(), v1, &old, WrapFormat::V2).expect("unwrap format 2");
    let (v2, new) = ring.wrap(&opened, WrapFormat::V2);
    assert_ne!(v1, v2);
    assert_eq!(ring.unwrap(ring.id(), v2, &new, WrapFormat::V2).expect("v2").as_bytes(), dek.as_bytes());
    assert!(ring.unwrap(ring.id(), v2, &new, WrapFormat::V1).is_err(), "the manifest requirement survives rotation");
}
