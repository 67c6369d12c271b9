//! Sealing at rest: format 3 binds kind, index, term and key id; format 2
//! (index only) still opens; plain and sealed stores refuse each other.

use shardline_crypto::{seal_blob, Keyring};

use super::*;

fn sealed() -> AtRest {
    AtRest::sealed(Kek::generate("meta-a"))
}

/// A value as format 2 stored it (before the key id and term were bound).
fn format2(key: &Kek, what: &str, index: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut aad = what.as_bytes().to_vec();
    aad.extend_from_slice(&index.to_be_bytes());
    let mut out = vec![2u8];
    out.extend_from_slice(&seal_blob(key, &aad, plaintext));
    out
}

#[test]
fn sealed_values_hide_plaintext_and_bind_their_row() {
    let s = sealed();
    let v = s.seal(Row::entry(5, 2), b"secret-name.txt");
    assert_eq!(v[0], 3, "written in format 3");
    assert!(!v.windows(6).any(|w| w == b"secret"));
    assert_eq!(s.open("entry", 5, Some(2), &v).unwrap(), b"secret-name.txt");
    assert!(s.open("snapshot", 5, Some(2), &v).is_err());
    assert!(AtRest::plain().open("entry", 5, Some(2), &v).is_err());
    assert!(s.open("entry", 5, Some(2), &AtRest::plain().seal(Row::entry(5, 2), b"x")).is_err());
    assert!(s.open("entry", 5, Some(2), &[]).is_err());
    assert!(s.open("entry", 5, Some(2), &v[..5]).is_err(), "truncated");
}

#[test]
fn an_entry_moved_to_another_index_or_term_fails_to_open_clearly() {
    let s = sealed();
    let v = s.seal(Row::entry(5, 2), b"name");
    let moved_index = s.open("entry", 6, Some(2), &v).unwrap_err().to_string();
    assert!(moved_index.contains("entry 6 (term 2)") && moved_index.contains("another index or term"), "{moved_index}");
    let moved_term = s.open("entry", 5, Some(3), &v).unwrap_err().to_string();
    assert!(moved_term.contains("entry 5 (term 3)") && moved_term.contains("another index or term"), "{moved_term}");
    let no_term = s.open("entry", 5, None, &v).unwrap_err().to_string();
    assert!(no_term.contains("carries none"), "{no_term}");
    // Snapshots bind their term too.
    let snap = s.seal(Row::snapshot(40, 3), b"state");
    assert_eq!(s.open("snapshot", 40, Some(3), &snap).unwrap(), b"state");
    assert!(s.open("snapshot", 40, Some(4), &snap).is_err());
}

#[test]
fn a_value_sealed_under_another_key_id_is_refused_by_name() {
    let v = sealed().seal(Row::entry(5, 2), b"name");
    let other = AtRest::sealed(Kek::generate("meta-b"));
    let e = other.open("entry", 5, Some(2), &v).unwrap_err().to_string();
    assert!(e.contains("key id `meta-a`") && e.contains("holds key id `meta-b`"), "{e}");
    // Another key under the same id fails authentication.
    assert!(AtRest::sealed(Kek::generate("meta-a")).open("entry", 5, Some(2), &v).is_err());
    // Relabelling the stored id to the reader's does not get past the AAD.
    let mut relabelled = v.clone();
    relabelled[2 + "meta-".len()] = b'b';
    let b = AtRest::sealed(Kek::generate("meta-b"));
    assert!(b.open("entry", 5, Some(2), &relabelled).is_err());
    let s = sealed();
    let mut forged = s.seal(Row::entry(5, 2), b"name");
    forged[2 + "meta-".len()] = b'b';
    let e = s.open("entry", 5, Some(2), &forged).unwrap_err().to_string();
    assert!(e.contains("key id `meta-b`"), "{e}");
}

#[test]
fn a_keyring_opens_values_of_every_version_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.key");
    let mut ring = Keyring::generate("meta-r");
    ring.save(&path).unwrap();
    let s1 = AtRest::load(Some(&path)).unwrap();
    assert_eq!(s1.key_id(), Some("meta-r"));
    let old = s1.seal(Row::entry(1, 1), b"one");
    ring.add_version().unwrap();
    ring.save(&path).unwrap();
    let s = AtRest::load(Some(&path)).unwrap();
    let new = s.seal(Row::entry(2, 1), b"two");
    let at = 2 + "meta-r".len();
    assert_eq!(&new[at..at + 4], &2u32.to_be_bytes(), "sealed under the current version");
    assert_eq!(s.open("entry", 1, Some(1), &old).unwrap(), b"one");
    assert_eq!(s.open("entry", 2, Some(1), &new).unwrap(), b"two");
    let e = s1.open("entry", 2, Some(1), &new).unwrap_err().to_string();
    assert!(e.contains("version 2") && e.contains("does not hold"), "{e}");
}

#[test]
fn format2_values_still_open_and_stay_bound_to_their_index() {
    let key = Kek::generate("meta-a");
    let old = format2(&key, "entry", 7, b"old entry");
    let s = AtRest::sealed(key);
    assert_eq!(s.open("entry", 7, None, &old).unwrap(), b"old entry");
    assert_eq!(s.open("entry", 7, Some(4), &old).unwrap(), b"old entry", "the term is checked by the caller");
    let e = s.open("entry", 8, None, &old).unwrap_err().to_string();
    assert!(e.contains("format 2"), "{e}");
    assert!(sealed().open("entry", 7, None, &old).is_err(), "another key");
}

#[test]
fn plain_round_trip() {
    let p = AtRest::plain();
    assert_eq!(p.open("entry", 1, Some(1), &p.seal(Row::entry(1, 1), b"abc")).unwrap(), b"abc");
    assert_eq!(p.open("entry", 1, None, &p.seal(Row::entry(1, 1), b"abc")).unwrap(), b"abc");
}
