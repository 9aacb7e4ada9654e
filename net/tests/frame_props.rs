//! Property tests of the frame codec: the decoder never panics, frames
//! survive any split of the stream, and corruption is always detected.

use govfs_net::{
    encode_frame, Frame, FrameDecoder, FrameError, FrameKind, DIRECT_BODY_LEN, HEADER_LEN, MAGIC,
};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = FrameKind> {
    proptest::sample::select(FrameKind::ALL.to_vec())
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        kind(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(kind, request_id, body)| Frame {
            kind,
            request_id,
            body,
        })
}

/// Small frames and large ones (around [`DIRECT_BODY_LEN`], gathered in
/// buffers of their own), their bodies a pattern from a seed.
fn mixed_frame() -> impl Strategy<Value = Frame> {
    let len = prop_oneof![
        0usize..300,
        (DIRECT_BODY_LEN - 2)..(DIRECT_BODY_LEN + 2),
        DIRECT_BODY_LEN..(4 * DIRECT_BODY_LEN),
    ];
    (kind(), any::<u64>(), len, any::<u8>()).prop_map(|(kind, request_id, len, seed)| Frame {
        kind,
        request_id,
        body: (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect(),
    })
}

/// Cuts `bytes` at the given points (taken modulo its length, in any order).
fn split_at_points<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Pushes every chunk and drains after each push, like an event loop would.
fn feed(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Result<Vec<Frame>, FrameError> {
    let mut frames = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame);
        }
    }
    Ok(frames)
}

/// Arbitrary bytes, half the time behind a valid magic and version so the
/// decoder gets past the first checks.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(prefix, rest)| {
            let mut bytes = Vec::new();
            if prefix {
                bytes.extend_from_slice(&MAGIC);
                bytes.extend_from_slice(&1u16.to_le_bytes());
            }
            bytes.extend_from_slice(&rest);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in noise(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max_body_len in prop_oneof![Just(0u32), 0u32..4096, Just(u32::MAX)],
    ) {
        let mut decoder = FrameDecoder::with_max_body_len(max_body_len);
        if let Err(err) = feed(&mut decoder, &split_at_points(&bytes, &cuts)) {
            // Poisoned: the same error forever, whatever comes next.
            decoder.push(&bytes);
            prop_assert_eq!(decoder.next_frame(), Err(err.clone()));
            prop_assert_eq!(decoder.next_frame(), Err(err));
            prop_assert_eq!(decoder.buffered_len(), 0);
        }
    }

    #[test]
    fn frames_round_trip_across_any_split(
        frames in proptest::collection::vec(frame(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.encode(&mut bytes);
        }
        let mut decoder = FrameDecoder::with_max_body_len(300);
        let decoded = feed(&mut decoder, &split_at_points(&bytes, &cuts));
        prop_assert_eq!(decoded, Ok(frames));
        prop_assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn large_and_small_frames_round_trip_across_any_split(
        frames in proptest::collection::vec(mixed_frame(), 0..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let mut bytes = Vec::new();
        for frame in &frames {
            frame.encode(&mut bytes);
        }
        let mut decoder = FrameDecoder::with_max_body_len(4 * DIRECT_BODY_LEN as u32);
        let decoded = feed(&mut decoder, &split_at_points(&bytes, &cuts));
        prop_assert_eq!(decoded, Ok(frames));
        prop_assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn a_flipped_byte_in_a_large_body_is_a_crc_mismatch(
        frame in mixed_frame().prop_filter("large", |f| f.body.len() >= DIRECT_BODY_LEN),
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        let at = HEADER_LEN + index.index(frame.body.len());
        bytes[at] ^= mask;
        let mut decoder = FrameDecoder::with_max_body_len(4 * DIRECT_BODY_LEN as u32);
        let result = feed(&mut decoder, &split_at_points(&bytes, &cuts));
        prop_assert!(matches!(result, Err(FrameError::CrcMismatch { .. })), "{:?}", result.map(|f| f.len()));
        prop_assert_eq!(decoder.buffered_len(), 0, "poisoned: nothing kept");
    }

    #[test]
    fn any_flipped_byte_is_an_error(
        frame in frame(),
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        const MAX: u32 = 1024;
        let mut bytes = Vec::new();
        encode_frame(frame.kind, frame.request_id, &frame.body, &mut bytes);
        let at = index.index(bytes.len());
        bytes[at] ^= mask;
        // Pad with zeros, so a length field corrupted upwards (up to the
        // limit) still gets a complete body and reaches the crc check.
        bytes.resize(bytes.len() + HEADER_LEN + MAX as usize, 0);

        let mut decoder = FrameDecoder::with_max_body_len(MAX);
        let result = feed(&mut decoder, &split_at_points(&bytes, &cuts));
        prop_assert!(result.is_err(), "flip of byte {} by {:#04x} decoded as {:?}", at, mask, result);
        let err = result.unwrap_err();
        let expected_kind = match at {
            0..=3 => matches!(err, FrameError::BadMagic { .. }),
            4..=5 => matches!(err, FrameError::UnsupportedVersion { .. }),
            6..=7 => matches!(
                err,
                FrameError::UnknownKind { .. } | FrameError::CrcMismatch { .. }
            ),
            8..=11 => matches!(
                err,
                FrameError::BodyTooLarge { .. } | FrameError::CrcMismatch { .. }
            ),
            _ => matches!(err, FrameError::CrcMismatch { .. }),
        };
        prop_assert!(expected_kind, "flip of byte {} gave {:?}", at, err);
        prop_assert_eq!(decoder.next_frame(), Err(err));
    }
}
