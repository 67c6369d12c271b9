//! Unit tests for [`Codec`](crate::Codec).

use super::*;

/// Deterministic non-trivial "sealed" bytes.
fn sealed(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(7919) >> 3) as u8).collect()
}

/// What the client does: pad the sealed chunk to k * cell and encode.
fn encode(codec: &Codec, data: &[u8]) -> Vec<Bytes> {
    let cell = codec.cell_size(data.len());
    let mut padded = data.to_vec();
    padded.resize(cell * codec.data_shards(), 0);
    codec.encode(Bytes::from(padded)).expect("encode")
}

fn codec() -> Codec {
    Codec::new(4, 2).expect("4+2")
}

#[test]
fn invalid_params_rejected() {
    for (k, m) in [(0, 2), (4, 0), (200, 57)] {
        assert!(matches!(Codec::new(k, m), Err(ErasureError::InvalidParams { .. })));
    }
    assert!(Codec::new(1, 1).is_ok());
    assert!(Codec::new(200, 56).is_ok());
}

#[test]
fn cell_size_is_aligned_and_at_least_64() {
    let c = codec();
    assert_eq!(c.cell_size(0), 64);
    assert_eq!(c.cell_size(1), 64);
    assert_eq!(c.cell_size(256), 64);
    assert_eq!(c.cell_size(257), 128);
    assert_eq!(c.cell_size((4 << 20) + 40), (1 << 20) + 64);
    for len in 0..2000 {
        let cell = c.cell_size(len);
        assert_eq!(cell % CELL_ALIGN, 0);
        assert!(cell * 4 >= len && cell >= 64);
    }
}

#[test]
fn round_trip_awkward_sizes() {
    let c = codec();
    for len in [1, 63, 64, 65, 255, 256, 257, (4 << 20) + 40] {
        let data = sealed(len);
        let shards = encode(&c, &data);
        assert_eq!(shards.len(), 6);
        let cell = c.cell_size(len);
        assert!(shards.iter().all(|s| s.len() == cell));
        let out = c.decode(shards.into_iter().map(Some).collect(), len).expect("decode");
        assert_eq!(out, data, "len {len}");
    }
}

#[test]
fn data_cells_are_zero_copy_slices() {
    let c = codec();
    let padded = Bytes::from(sealed(4 * 128));
    let base = padded.as_ptr();
    let shards = c.encode(padded).expect("encode");
    for (i, shard) in shards[..4].iter().enumerate() {
        assert_eq!(shard.as_ptr(), base.wrapping_add(i * 128));
    }
}

#[test]
fn decode_with_any_two_missing() {
    let c = codec();
    for len in [1000, (4 << 20) + 40] {
        let data = sealed(len);
        let shards = encode(&c, &data);
        for a in 0..6 {
            for b in a + 1..6 {
                let mut slots: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
                slots[a] = None;
                slots[b] = None;
                let out = c.decode(slots, len).expect("decode");
                assert!(out == data, "len {len}, missing {a} and {b}");
            }
        }
    }
}

#[test]
fn three_missing_is_too_few_shards() {
    let c = codec();
    let shards = encode(&c, &sealed(1000));
    let mut slots: Vec<Option<Bytes>> = shards.into_iter().map(Some).collect();
    for i in [0, 3, 5] {
        slots[i] = None;
    }
    assert!(matches!(c.decode(slots, 1000), Err(ErasureError::TooFewShards { have: 3, need: 4 })));
    assert!(matches!(c.decode(vec![None; 6], 10), Err(ErasureError::TooFewShards { have: 0, need: 4 })));
}

#[test]
fn rebuild_restores_exactly_the_lost_shards() {
    let c = codec();
    let original: Vec<Vec<u8>> = encode(&c, &sealed(5000)).iter().map(|s| s.to_vec()).collect();
    let mut losses: Vec<Vec<usize>> = (0..6).map(|a| vec![a]).collect();
    for a in 0..6 {
        for b in a + 1..6 {
            losses.push(vec![a, b]);
        }
    }
    for lost in losses {
        let mut slots: Vec<Option<Vec<u8>>> = original.iter().cloned().map(Some).collect();
        for &i in &lost {
            slots[i] = None;
        }
        c.rebuild(&mut slots).expect("rebuild");
        let rebuilt: Vec<Vec<u8>> = slots.into_iter().map(|s| s.expect("rebuilt")).collect();
        assert_eq!(rebuilt, original, "lost {lost:?}");
    }
    let mut three: Vec<Option<Vec<u8>>> = original.iter().cloned().map(Some).collect();
    three[0] = None;
    three[1] = None;
    three[4] = None;
    assert!(matches!(c.rebuild(&mut three), Err(ErasureError::TooFewShards { have: 3, need: 4 })));
}

#[test]
fn mismatched_shard_lengths_are_errors() {
    let c = codec();
    let shards = encode(&c, &sealed(1000));
    let mut slots: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
    slots[0] = None;
    slots[2] = Some(shards[2].slice(1..));
    assert!(matches!(c.decode(slots, 1000), Err(ErasureError::ShardSizeMismatch { index: 2, .. })));

    let mut vecs: Vec<Option<Vec<u8>>> = shards.iter().map(|s| Some(s.to_vec())).collect();
    vecs[1] = None;
    if let Some(v) = vecs[5].as_mut() {
        v.push(0);
    }
    assert!(matches!(c.rebuild(&mut vecs), Err(ErasureError::ShardSizeMismatch { index: 5, .. })));

    let empty: Vec<Option<Bytes>> = vec![Some(Bytes::new()); 6];
    assert!(matches!(c.decode(empty, 0), Err(ErasureError::ShardSizeMismatch { .. })));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let c = codec();
    for len in [0, 1, 63, 65, 258] {
        assert!(matches!(c.encode(Bytes::from(vec![0u8; len])), Err(ErasureError::BadPaddedLength { .. })));
    }
    let shards = encode(&c, &sealed(100));
    let slots: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
    assert!(matches!(c.decode(slots[..5].to_vec(), 100), Err(ErasureError::WrongShardCount { have: 5, expected: 6 })));
    assert!(matches!(c.decode(slots.clone(), 4 * 64 + 1), Err(ErasureError::SealedLenTooLarge { .. })));
    let mut degraded = slots;
    degraded[1] = None;
    assert!(matches!(c.decode(degraded, 4 * 64 + 1), Err(ErasureError::SealedLenTooLarge { .. })));
    let mut vecs: Vec<Option<Vec<u8>>> = vec![None; 7];
    assert!(matches!(c.rebuild(&mut vecs), Err(ErasureError::WrongShardCount { .. })));
}

#[test]
fn the_same_range_of_any_k_shards_reconstructs_that_range_of_every_data_cell() {
    let c = codec();
    let data = sealed(4 * 4096 + 100);
    let shards = encode(&c, &data);
    let cell = shards[0].len();
    for (a, b) in [(0, cell), (0, 1), (100, 1000), (cell - 7, cell), (4000, 4096)] {
        // Every pair of lost shards.
        for lost1 in 0..6 {
            for lost2 in lost1..6 {
                let slots: Vec<Option<Bytes>> =
                    shards.iter().enumerate().map(|(i, s)| (i != lost1 && i != lost2).then(|| s.slice(a..b))).collect();
                let cells = c.reconstruct_data(slots).expect("reconstruct range");
                assert_eq!(cells.len(), 4);
                for (i, got) in cells.iter().enumerate() {
                    assert_eq!(got, &shards[i].slice(a..b), "cell {i} range {a}..{b} lost {lost1},{lost2}");
                }
            }
        }
    }
}

#[test]
fn reconstruct_data_needs_k_equal_ranges() {
    let c = codec();
    let shards = encode(&c, &sealed(1000));
    let mut slots: Vec<Option<Bytes>> = shards.iter().map(|s| Some(s.slice(0..10))).collect();
    slots[0] = None;
    slots[1] = None;
    slots[2] = None;
    assert!(matches!(c.reconstruct_data(slots), Err(ErasureError::TooFewShards { have: 3, need: 4 })));
    let mut slots: Vec<Option<Bytes>> = shards.iter().map(|s| Some(s.slice(0..10))).collect();
    slots[0] = None;
    slots[5] = Some(shards[5].slice(0..11));
    assert!(matches!(c.reconstruct_data(slots), Err(ErasureError::ShardSizeMismatch { .. })));
}
