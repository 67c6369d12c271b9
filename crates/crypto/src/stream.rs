//! Chunk format v2: a chunk sealed as a STREAM of segments (Hoang,
//! Reyhanitabar, Rogaway, Vizár; as in age and Tink's streaming AEAD), each
//! with its own tag, so any segment opens on its own.
//!
//! Sealed segment `i`: `salt(16) || ciphertext || tag(16)`, where `salt` is
//! drawn at random once per sealed chunk and repeated in every segment (a
//! range read then needs no other bytes: 16 bytes per 64 KiB instead of a
//! second fetch from the chunk's first cell).
//!
//! - Nonces: per-chunk random prefix plus the segment counter, so nonces
//!   never repeat inside a chunk by construction.
//!   XChaCha20-Poly1305 keys with the DEK and nonce `salt || i(u32 BE) || 0(4)`
//!   (a 128-bit random prefix per chunk, as safe as its random nonces were).
//!   AES-256-GCM keys with `HKDF-SHA256(salt, DEK, info = label || suite ||
//!   file id || chunk index || version)`, a key of its own per sealed chunk,
//!   and nonce `salt[..8] || i(u32 BE)`: no 96-bit nonce is ever used twice
//!   under one key.
//! - AAD ([`ChunkAad::encode_segment`]) binds format, suite, file id, chunk
//!   index, version, segment index, a last-segment flag and the key id, so a
//!   segment moved to another place, another chunk version or file, or
//!   reordered, fails to open; dropping the final segment(s) fails because
//!   the new last one was sealed without the flag.

use std::ops::Range;

use chacha20poly1305::aead::{inout::InOutBuf, AeadInOut};
use chacha20poly1305::{Tag as XTag, XChaCha20Poly1305, XNonce};
use rand::{rngs::OsRng, RngCore};
use ring::aead::{self, Aad, LessSafeKey, Nonce};
use ring::hkdf;

use crate::segment::{SegmentLayout, SALT_LEN};
use crate::{ChunkAad, CipherSuite, CryptoError, Dek, NONCE_LEN, TAG_LEN};

/// Domain label of the AES-256-GCM per-chunk key derivation.
const KDF_LABEL: &[u8] = b"shardline chunk v2 key";

/// One sealed chunk's cipher: the suite's key for that chunk and its salt.
enum SegmentCipher {
    XChaCha { cipher: XChaCha20Poly1305, salt: [u8; SALT_LEN] },
    Aes { key: Box<LessSafeKey>, salt: [u8; SALT_LEN] },
}

impl SegmentCipher {
    fn new(dek: &Dek, suite: CipherSuite, aad: &ChunkAad, salt: [u8; SALT_LEN]) -> SegmentCipher {
        match suite {
            CipherSuite::XChaCha20Poly1305 => SegmentCipher::XChaCha { cipher: dek.cipher(), salt },
            CipherSuite::Aes256Gcm => {
                let mut info = Vec::with_capacity(KDF_LABEL.len() + 1 + 24);
                info.extend_from_slice(KDF_LABEL);
                info.push(suite.id());
                info.extend_from_slice(&aad.file_id.to_be_bytes());
                info.extend_from_slice(&aad.chunk_index.to_be_bytes());
                info.extend_from_slice(&aad.version.to_be_bytes());
                let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(dek.as_bytes());
                let info = [&info[..]];
                let okm = prk.expand(&info, &aead::AES_256_GCM).expect("32 bytes is within HKDF-SHA256's output limit");
                SegmentCipher::Aes { key: Box::new(LessSafeKey::new(aead::UnboundKey::from(okm))), salt }
            }
        }
    }

    fn salt(&self) -> &[u8; SALT_LEN] {
        match self {
            SegmentCipher::XChaCha { salt, .. } | SegmentCipher::Aes { salt, .. } => salt,
        }
    }

    /// Encrypt `buf` in place as segment `index`; returns the tag.
    fn seal(&self, index: u32, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        match self {
            SegmentCipher::XChaCha { cipher, salt } => {
                let nonce = xchacha_nonce(salt, index);
                let tag = cipher
                    .encrypt_inout_detached(&nonce, aad, InOutBuf::from(buf))
                    .expect("a segment is within the XChaCha20-Poly1305 length limit");
                tag.into()
            }
            SegmentCipher::Aes { key, salt } => {
                let tag = key
                    .seal_in_place_separate_tag(aes_nonce(salt, index), Aad::from(aad), buf)
                    .expect("a segment is within the AES-GCM length limit");
                let mut out = [0u8; TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                out
            }
        }
    }

    /// Verify and decrypt `buf` in place as segment `index`.
    fn open(&self, index: u32, aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), ()> {
        match self {
            SegmentCipher::XChaCha { cipher, salt } => {
                let nonce = xchacha_nonce(salt, index);
                let tag = XTag::from(*tag);
                cipher.decrypt_inout_detached(&nonce, aad, InOutBuf::from(buf), &tag).map_err(|_| ())
            }
            SegmentCipher::Aes { key, salt } => key
                .open_in_place_separate_tag(aes_nonce(salt, index), Aad::from(aad), aead::Tag::from(*tag), buf, 0..)
                .map(|_| ())
                .map_err(|_| ()),
        }
    }
}

fn xchacha_nonce(salt: &[u8; SALT_LEN], index: u32) -> XNonce {
    let mut n = [0u8; NONCE_LEN];
    n[..SALT_LEN].copy_from_slice(salt);
    n[SALT_LEN..SALT_LEN + 4].copy_from_slice(&index.to_be_bytes());
    XNonce::from(n)
}

fn aes_nonce(salt: &[u8; SALT_LEN], index: u32) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..8].copy_from_slice(&salt[..8]);
    n[8..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn segment_index(i: usize) -> u32 {
    u32::try_from(i).expect("segment index fits in u32: chunks are at most a few hundred MiB")
}

/// Seal `plaintext` (exactly `layout.plain_len()` bytes) as chunk format v2,
/// appending `layout.sealed_len()` bytes to `out`. Reserve `out`'s capacity
/// up front (to the padded length the erasure coder wants) and nothing is
/// copied twice or zero-filled: each segment is copied into `out` and
/// encrypted there while it is in cache.
///
/// # Panics
/// If `plaintext.len() != layout.plain_len()` (a caller bug).
pub fn seal_segments(
    dek: &Dek,
    suite: CipherSuite,
    aad: &ChunkAad,
    layout: &SegmentLayout,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    assert_eq!(plaintext.len(), layout.plain_len(), "plaintext length differs from the layout's");
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let cipher = SegmentCipher::new(dek, suite, aad, salt);
    let mut seg_aad = aad.encode_segment(suite);
    let n = layout.segment_count();
    out.reserve(layout.sealed_len());
    for i in 0..n {
        let plain = &plaintext[layout.plain_range(i..i + 1)];
        ChunkAad::set_segment(&mut seg_aad, segment_index(i), i + 1 == n);
        out.extend_from_slice(cipher.salt());
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = cipher.seal(segment_index(i), &seg_aad, &mut out[start..]);
        out.extend_from_slice(&tag);
    }
}

/// Verify and decrypt segments `segs` of a v2 chunk with layout `layout`.
///
/// `sealed` holds their sealed bytes, `layout.sealed_range(segs)`, as the
/// concatenation of one or more parts (the shard ranges they were fetched
/// in, or whole data cells; bytes past the range are ignored). Returns the
/// plaintext of `layout.plain_range(segs)`. Each segment is copied into the
/// output and decrypted there, in place: no zero-fill, no second copy.
pub fn open_segments(
    dek: &Dek,
    suite: CipherSuite,
    aad: &ChunkAad,
    layout: &SegmentLayout,
    segs: Range<usize>,
    sealed: &[&[u8]],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(layout.plain_range(segs.clone()).len());
    open_each(dek, suite, aad, layout, segs, sealed, &mut out)?;
    Ok(out)
}

/// Verify and decrypt plaintext bytes `at..at + out.len()` of a v2 chunk
/// with layout `layout` into `out` (a caller's buffer).
///
/// `sealed` holds the sealed bytes of the segments holding that range,
/// `layout.sealed_range(layout.segments_for(at..at + out.len()))`, in parts
/// as for [`open_segments`]. A segment wholly inside the range is copied
/// into its place in `out` and decrypted there; a segment only partly inside
/// it (at most the first and the last: a segment authenticates only whole)
/// is decrypted in a scratch buffer of one segment and its part copied out.
/// A range past the chunk's plaintext is an error.
pub fn open_segments_into(
    dek: &Dek,
    suite: CipherSuite,
    aad: &ChunkAad,
    layout: &SegmentLayout,
    at: usize,
    sealed: &[&[u8]],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let plain = at..at.saturating_add(out.len());
    if plain.end > layout.plain_len() {
        return Err(CryptoError::PlainOutOfRange { range: plain, len: layout.plain_len() });
    }
    let segs = layout.segments_for(plain.clone());
    let mut sink = Window { out, plain, layout, scratch: Vec::new(), partial: false };
    open_each(dek, suite, aad, layout, segs, sealed, &mut sink)
}

/// Where [`open_each`] puts each segment to decrypt it in place.
trait SegmentSink {
    /// Copy segment `i`'s `len` ciphertext bytes out of `sealed` into the
    /// place it is decrypted in, and return that place.
    fn place(&mut self, i: usize, len: usize, sealed: &mut Cursor) -> Result<&mut [u8], CryptoError>;
    /// The segment placed last is now plaintext.
    fn opened(&mut self, i: usize);
}

/// Appended to a growing output: nothing zero-filled first.
impl SegmentSink for Vec<u8> {
    fn place(&mut self, _: usize, len: usize, sealed: &mut Cursor) -> Result<&mut [u8], CryptoError> {
        let start = self.len();
        sealed.append(len, self)?;
        Ok(&mut self[start..])
    }

    fn opened(&mut self, _: usize) {}
}

/// Plaintext bytes `plain` of the chunk, written into `out`.
struct Window<'a> {
    out: &'a mut [u8],
    plain: Range<usize>,
    layout: &'a SegmentLayout,
    /// One segment only partly inside `plain`, decrypted here.
    scratch: Vec<u8>,
    partial: bool,
}

impl SegmentSink for Window<'_> {
    fn place(&mut self, i: usize, len: usize, sealed: &mut Cursor) -> Result<&mut [u8], CryptoError> {
        let seg = self.layout.plain_range(i..i + 1);
        self.partial = seg.start < self.plain.start || seg.end > self.plain.end;
        if self.partial {
            self.scratch.clear();
            sealed.append(len, &mut self.scratch)?;
            return Ok(&mut self.scratch[..]);
        }
        let dst = &mut self.out[seg.start - self.plain.start..seg.end - self.plain.start];
        sealed.copy_to(dst)?;
        Ok(dst)
    }

    fn opened(&mut self, i: usize) {
        if !self.partial {
            return;
        }
        let seg = self.layout.plain_range(i..i + 1);
        let (from, to) = (seg.start.max(self.plain.start), seg.end.min(self.plain.end));
        self.out[from - self.plain.start..to - self.plain.start]
            .copy_from_slice(&self.scratch[from - seg.start..to - seg.start]);
    }
}

/// Verify and decrypt segments `segs`, each where `sink` places it.
fn open_each(
    dek: &Dek,
    suite: CipherSuite,
    aad: &ChunkAad,
    layout: &SegmentLayout,
    segs: Range<usize>,
    sealed: &[&[u8]],
    sink: &mut impl SegmentSink,
) -> Result<(), CryptoError> {
    let n = layout.segment_count();
    if segs.end > n || segs.start > segs.end {
        return Err(CryptoError::SegmentOutOfRange { segments: segs, count: n });
    }
    let mut cursor = Cursor { parts: sealed, part: 0, at: 0 };
    let mut seg_aad = aad.encode_segment(suite);
    let mut cipher: Option<SegmentCipher> = None;
    for i in segs {
        let plain_len = layout.plain_range(i..i + 1).len();
        let mut salt = [0u8; SALT_LEN];
        cursor.copy_to(&mut salt)?;
        if cipher.as_ref().is_none_or(|c| c.salt() != &salt) {
            cipher = Some(SegmentCipher::new(dek, suite, aad, salt));
        }
        let c = cipher.as_ref().expect("set above");
        let buf = sink.place(i, plain_len, &mut cursor)?;
        let mut tag = [0u8; TAG_LEN];
        cursor.copy_to(&mut tag)?;
        ChunkAad::set_segment(&mut seg_aad, segment_index(i), i + 1 == n);
        c.open(segment_index(i), &seg_aad, buf, &tag).map_err(|()| CryptoError::SegmentAuthFailed { segment: i })?;
        sink.opened(i);
    }
    Ok(())
}

/// Reads the logical concatenation of `parts` front to back.
struct Cursor<'a> {
    parts: &'a [&'a [u8]],
    part: usize,
    at: usize,
}

impl Cursor<'_> {
    /// Hand the next `n` bytes to `f`, in one or more pieces.
    fn take(&mut self, mut n: usize, mut f: impl FnMut(&[u8])) -> Result<(), CryptoError> {
        while n > 0 {
            let Some(part) = self.parts.get(self.part) else {
                return Err(CryptoError::Truncated { len: self.total(), min: self.total() + n });
            };
            let avail = &part[self.at.min(part.len())..];
            if avail.is_empty() {
                self.part += 1;
                self.at = 0;
                continue;
            }
            let k = avail.len().min(n);
            f(&avail[..k]);
            self.at += k;
            n -= k;
        }
        Ok(())
    }

    fn copy_to(&mut self, dst: &mut [u8]) -> Result<(), CryptoError> {
        let mut filled = 0;
        self.take(dst.len(), |b| {
            dst[filled..filled + b.len()].copy_from_slice(b);
            filled += b.len();
        })
    }

    fn append(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.take(n, |b| out.extend_from_slice(b))
    }

    fn total(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
