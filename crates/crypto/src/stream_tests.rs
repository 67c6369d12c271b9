use super::*;
use crate::{SegmentLayout, SEGMENT_OVERHEAD};

const AAD: ChunkAad<'static> = ChunkAad { file_id: 7, chunk_index: 3, version: 2, key_id: "kek-test" };
const SUITES: [CipherSuite; 2] = [CipherSuite::XChaCha20Poly1305, CipherSuite::Aes256Gcm];
/// Small segments, so a few hundred bytes make several of them.
const SEG: usize = 64;

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn seal(dek: &Dek, suite: CipherSuite, aad: &ChunkAad, pt: &[u8]) -> (SegmentLayout, Vec<u8>) {
    let layout = SegmentLayout::with_segment_size(pt.len(), SEG);
    let mut out = Vec::new();
    seal_segments(dek, suite, aad, &layout, pt, &mut out);
    assert_eq!(out.len(), layout.sealed_len());
    (layout, out)
}

fn open_all(dek: &Dek, suite: CipherSuite, aad: &ChunkAad, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let layout = SegmentLayout::from_sealed_len_with(sealed.len(), SEG)?;
    open_segments(dek, suite, aad, &layout, 0..layout.segment_count(), &[sealed])
}

#[test]
fn whole_chunks_round_trip_in_both_suites() {
    let dek = Dek::generate();
    for suite in SUITES {
        for len in [0, 1, SEG - 1, SEG, SEG + 1, 5 * SEG + 17] {
            let pt = sample(len);
            let (layout, sealed) = seal(&dek, suite, &AAD, &pt);
            assert_eq!(sealed.len(), len + layout.segment_count() * SEGMENT_OVERHEAD);
            assert_eq!(open_all(&dek, suite, &AAD, &sealed).expect("open"), pt, "{suite:?} {len}");
            if len >= 32 {
                let ct = &sealed[SALT_LEN..SALT_LEN + 32];
                assert_ne!(ct, &pt[..32], "ciphertext equals plaintext");
            }
        }
    }
}

#[test]
fn any_range_of_segments_opens_from_parts_cut_anywhere() {
    let dek = Dek::generate();
    for suite in SUITES {
        let pt = sample(6 * SEG + 5);
        let (layout, sealed) = seal(&dek, suite, &AAD, &pt);
        let n = layout.segment_count();
        for a in 0..n {
            for b in a + 1..=n {
                let r = layout.sealed_range(a..b);
                let bytes = &sealed[r];
                for cut in [0, 1, SALT_LEN + 3, bytes.len() / 2, bytes.len() - 1] {
                    let (x, y) = bytes.split_at(cut);
                    let got = open_segments(&dek, suite, &AAD, &layout, a..b, &[x, y]).expect("open range");
                    assert_eq!(got, pt[layout.plain_range(a..b)], "{suite:?} segments {a}..{b} cut at {cut}");
                }
            }
        }
    }
}

#[test]
fn any_tampered_byte_fails() {
    let dek = Dek::generate();
    for suite in SUITES {
        let (_, sealed) = seal(&dek, suite, &AAD, &sample(2 * SEG + 9));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open_all(&dek, suite, &AAD, &bad).is_err(), "{suite:?}: flip at byte {i} accepted");
        }
    }
}

#[test]
fn swapped_segments_fail() {
    let dek = Dek::generate();
    for suite in SUITES {
        let (layout, sealed) = seal(&dek, suite, &AAD, &sample(3 * SEG));
        let (s0, s1) = (layout.sealed_range(0..1), layout.sealed_range(1..2));
        let mut swapped = sealed[s1.clone()].to_vec();
        swapped.extend_from_slice(&sealed[s0]);
        swapped.extend_from_slice(&sealed[s1.end..]);
        assert_eq!(swapped.len(), sealed.len());
        let err = open_all(&dek, suite, &AAD, &swapped).expect_err("swapped segments opened");
        assert!(matches!(err, CryptoError::SegmentAuthFailed { segment: 0 }), "{err}");
    }
}

#[test]
fn dropping_the_last_segments_fails() {
    let dek = Dek::generate();
    for suite in SUITES {
        let (layout, sealed) = seal(&dek, suite, &AAD, &sample(3 * SEG + 10));
        for keep in 1..layout.segment_count() {
            let short = &sealed[..layout.sealed_range(0..keep).end];
            let err = open_all(&dek, suite, &AAD, short).expect_err("truncated chunk opened");
            assert!(matches!(err, CryptoError::SegmentAuthFailed { segment } if segment == keep - 1), "{err}");
        }
        // A reader told the chunk is longer than it is fails too.
        let layout_long = SegmentLayout::with_segment_size(4 * SEG + 10, SEG);
        let r = open_segments(&dek, suite, &AAD, &layout_long, 0..4, &[&sealed]);
        assert!(r.is_err(), "{suite:?}: a full segment sealed last opened as a middle one");
    }
}

#[test]
fn a_segment_replayed_from_another_version_chunk_or_file_fails() {
    let dek = Dek::generate();
    let pt = sample(3 * SEG);
    for suite in SUITES {
        let (layout, sealed) = seal(&dek, suite, &AAD, &pt);
        let others = [
            ChunkAad { version: 3, ..AAD },
            ChunkAad { chunk_index: 4, ..AAD },
            ChunkAad { file_id: 8, ..AAD },
            ChunkAad { key_id: "kek-other", ..AAD },
        ];
        for other in others {
            let (_, foreign) = seal(&dek, suite, &other, &pt);
            let r = layout.sealed_range(1..2);
            let mut spliced = sealed.clone();
            spliced[r.clone()].copy_from_slice(&foreign[r.clone()]);
            let err = open_all(&dek, suite, &AAD, &spliced).expect_err("replayed segment opened");
            assert!(matches!(err, CryptoError::SegmentAuthFailed { segment: 1 }), "{other:?}: {err}");
            // Alone, at its own position, it fails too.
            let alone = open_segments(&dek, suite, &AAD, &layout, 1..2, &[&foreign[r]]);
            assert!(alone.is_err(), "{suite:?} {other:?}");
            // And the whole foreign chunk does not open as this one.
            assert!(open_all(&dek, suite, &AAD, &foreign).is_err());
        }
    }
}

#[test]
fn wrong_key_or_suite_fails() {
    let dek = Dek::generate();
    for suite in SUITES {
        let (_, sealed) = seal(&dek, suite, &AAD, &sample(100));
        assert!(open_all(&Dek::generate(), suite, &AAD, &sealed).is_err());
        let other =
            if suite == CipherSuite::Aes256Gcm { CipherSuite::XChaCha20Poly1305 } else { CipherSuite::Aes256Gcm };
        assert!(open_all(&dek, other, &AAD, &sealed).is_err());
    }
}

#[test]
fn every_seal_draws_a_fresh_salt() {
    let dek = Dek::generate();
    for suite in SUITES {
        let pt = sample(2 * SEG);
        let (layout, a) = seal(&dek, suite, &AAD, &pt);
        let (_, b) = seal(&dek, suite, &AAD, &pt);
        assert_ne!(a[..SALT_LEN], b[..SALT_LEN]);
        assert_ne!(a, b, "same plaintext, place and key must still seal differently");
        // Every segment of one seal carries the same salt.
        let s1 = layout.sealed_range(1..2).start;
        assert_eq!(a[..SALT_LEN], a[s1..s1 + SALT_LEN]);
    }
}

#[test]
fn short_or_out_of_range_input_is_an_error_not_a_panic() {
    let dek = Dek::generate();
    for suite in SUITES {
        let (layout, sealed) = seal(&dek, suite, &AAD, &sample(3 * SEG));
        for len in [0, 5, SALT_LEN + 3, sealed.len() - 1] {
            assert!(open_segments(&dek, suite, &AAD, &layout, 0..3, &[&sealed[..len]]).is_err(), "{len}");
        }
        assert!(matches!(
            open_segments(&dek, suite, &AAD, &layout, 2..5, &[&sealed]),
            Err(CryptoError::SegmentOutOfRange { .. })
        ));
    }
}

#[test]
fn the_default_segment_size_is_used_by_the_public_layout() {
    let dek = Dek::generate();
    for suite in SUITES {
        let pt = sample(3 * crate::SEGMENT_SIZE + 1);
        let layout = SegmentLayout::for_plaintext(pt.len());
        assert_eq!(layout.segment_count(), 4);
        let mut sealed = Vec::new();
        seal_segments(&dek, suite, &AAD, &layout, &pt, &mut sealed);
        let back = SegmentLayout::from_sealed_len(sealed.len()).expect("valid length");
        assert_eq!(back, layout);
        let mid = open_segments(&dek, suite, &AAD, &back, 1..3, &[&sealed[back.sealed_range(1..3)]]).unwrap();
        assert_eq!(mid, pt[back.plain_range(1..3)]);
    }
}

#[test]
fn any_plaintext_range_opens_into_a_callers_buffer() {
    let dek = Dek::generate();
    for suite in SUITES {
        let pt = sample(4 * SEG + 9);
        let (layout, sealed) = seal(&dek, suite, &AAD, &pt);
        // Every start and end, on and off segment boundaries, including
        // empty ranges and the chunk's last byte.
        for from in 0..=pt.len() {
            for to in [from, from + 1, from + SEG - 1, from + SEG, from + 2 * SEG + 3, pt.len()] {
                let to = to.min(pt.len());
                if to < from {
                    continue;
                }
                let bytes = &sealed[layout.sealed_range(layout.segments_for(from..to))];
                let (x, y) = bytes.split_at(bytes.len() / 2);
                let mut out = vec![0xAA; to - from];
                open_segments_into(&dek, suite, &AAD, &layout, from, &[x, y], &mut out).expect("open into");
                assert!(out == pt[from..to], "{suite:?} bytes {from}..{to}");
            }
        }
    }
}

#[test]
fn opening_into_a_buffer_fails_on_tampering_and_past_the_chunk() {
    let dek = Dek::generate();
    for suite in SUITES {
        let pt = sample(3 * SEG);
        let (layout, mut sealed) = seal(&dek, suite, &AAD, &pt);
        let mut out = vec![0; 10];
        assert!(matches!(
            open_segments_into(&dek, suite, &AAD, &layout, 3 * SEG - 5, &[&sealed], &mut out),
            Err(CryptoError::PlainOutOfRange { .. })
        ));
        // A byte of the middle segment flipped: a range inside it (scratch)
        // and one covering it whole (in place) both fail.
        sealed[SEG + SEGMENT_OVERHEAD + SALT_LEN + 7] ^= 1;
        for (at, len) in [(SEG + 3, 10), (0, 3 * SEG)] {
            let mut out = vec![0; len];
            let bytes = &sealed[layout.sealed_range(layout.segments_for(at..at + len))];
            let got = open_segments_into(&dek, suite, &AAD, &layout, at, &[bytes], &mut out);
            assert!(matches!(got, Err(CryptoError::SegmentAuthFailed { segment: 1 })), "{suite:?} {at}+{len}");
        }
    }
}
