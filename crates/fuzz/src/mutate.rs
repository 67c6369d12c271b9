//! Byte-level mutations of an input: bit flips, edge values, protobuf-ish
//! varint and length edits, insertions, deletions, duplication, truncation
//! and splicing with another input.

use crate::Rng;

/// Largest input a mutation produces.
pub const MAX_INPUT: usize = 64 << 10;

/// Apply 1 to 4 random mutations to `input`; `other` is spliced from.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut out, other);
    }
    out.truncate(MAX_INPUT);
    out
}

fn mutate_once(rng: &mut Rng, v: &mut Vec<u8>, other: &[u8]) {
    let at = rng.below(v.len() + 1);
    match rng.below(11) {
        // Flip one bit.
        0 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
        }
        // An edge byte: a varint continuation, a length, a field tag.
        1 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x08][rng.below(8)];
        }
        // A little-endian edge number over 4 or 8 bytes.
        2 => {
            let n = rng.edgy_u64().to_le_bytes();
            let w = if rng.one_in(2) { 4 } else { 8 };
            for (k, b) in n[..w].iter().enumerate() {
                match v.get_mut(at + k) {
                    Some(x) => *x = *b,
                    None => v.push(*b),
                }
            }
        }
        // A varint edge number inserted (protobuf lengths and values).
        3 => {
            let mut n = rng.edgy_u64();
            let mut enc = Vec::new();
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    enc.push(byte);
                    break;
                }
                enc.push(byte | 0x80);
            }
            v.splice(at..at, enc);
        }
        // Random bytes inserted.
        4 => {
            let n = 1 + rng.below(16);
            let bytes = rng.bytes(n);
            v.splice(at..at, bytes);
        }
        // A range deleted.
        5 if !v.is_empty() => {
            let end = (at + 1 + rng.below(16)).min(v.len());
            let start = at.min(end);
            v.drain(start..end);
        }
        // A range duplicated.
        6 if !v.is_empty() => {
            let start = rng.below(v.len());
            let end = (start + 1 + rng.below(32)).min(v.len());
            let piece = v[start..end].to_vec();
            v.splice(at..at, piece);
        }
        // Truncated.
        7 => v.truncate(at),
        // Spliced: our head, the other input's tail.
        8 if !other.is_empty() => {
            let from = rng.below(other.len());
            v.truncate(at);
            v.extend_from_slice(&other[from..]);
        }
        // One byte set to anything.
        9 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = rng.next_u64() as u8;
        }
        // Bytes appended.
        _ => {
            let n = rng.below(64);
            let bytes = rng.bytes(n);
            v.extend_from_slice(&bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_change_inputs_and_stay_bounded() {
        let mut rng = Rng::new(7);
        let seed = b"a valid message, more or less".to_vec();
        let mut changed = 0;
        for _ in 0..1000 {
            let m = mutate(&mut rng, &seed, b"other");
            assert!(m.len() <= MAX_INPUT);
            changed += usize::from(m != seed);
        }
        assert!(changed > 900, "only {changed} of 1000 mutations changed the input");
        let huge = vec![0u8; MAX_INPUT * 2];
        assert!(mutate(&mut rng, &huge, &[]).len() <= MAX_INPUT);
    }
}
