//! The one codec of the project: bincode 2 (serde path), always with a byte limit.
//!
//! Every value that crosses the network or lands in redb goes through `encode` and `decode`,
//! so the byte limit and the trailing-bytes check cannot be forgotten at a call site.

use serde::{Serialize, de::DeserializeOwned};

/// The largest value the codec will decode, whatever the caller asks for.
pub const MAX_VALUE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode value: {0}")]
    Encode(String),
    #[error("malformed value: {0}")]
    Decode(String),
    #[error("value of {len} bytes is over the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
}

/// bincode's limit counts every allocation a value claims. It is a type parameter, so a few
/// steps are compiled in and a decode takes the smallest that covers its caller's limit.
type Config<const LIMIT: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
>;

const fn config<const LIMIT: usize>() -> Config<LIMIT> {
    bincode::config::standard().with_limit::<LIMIT>()
}

fn decode_within<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice::<T, _>(bytes, config::<LIMIT>())
}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config::<MAX_VALUE>())
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes exactly one value that fills `bytes`; `limit` bounds what the decoder may allocate.
pub fn decode_bounded<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    let limit = limit.min(MAX_VALUE);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    // bincode's own limit counts every allocation the value claims, so a short frame that
    // announces a huge vector fails here instead of allocating.
    const K: usize = 1024;
    let decoded = match limit {
        0..=65_536 => decode_within::<T, { 64 * K }>(bytes),
        65_537..=262_144 => decode_within::<T, { 256 * K }>(bytes),
        262_145..=1_048_576 => decode_within::<T, { K * K }>(bytes),
        1_048_577..=4_194_304 => decode_within::<T, { 4 * K * K }>(bytes),
        _ => decode_within::<T, MAX_VALUE>(bytes),
    };
    let (value, used) = decoded.map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_bounded(bytes, MAX_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        name: String,
        items: Vec<u64>,
    }

    #[test]
    fn round_trip() {
        let v = Sample {
            name: "branch-1".into(),
            items: vec![1, 2, 300],
        };
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<Sample>(&bytes).unwrap(), v);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u32>(&bytes),
            Err(CodecError::TrailingBytes(1))
        ));
    }

    #[test]
    fn a_short_frame_claiming_a_huge_vector_does_not_allocate() {
        // Varint length prefix announcing 2^62 elements, then nothing.
        let bytes = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x40];
        assert!(matches!(
            decode::<Vec<u64>>(&bytes),
            Err(CodecError::Decode(_))
        ));
        assert!(matches!(
            decode::<String>(&bytes),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn what_a_value_may_claim_is_its_caller_s_limit_not_the_codec_s() {
        // Ten bytes that announce a string of a million bytes: within the codec's 16 MiB, so
        // bincode would allocate it before finding the bytes missing, but not within a 64 KiB
        // link's cap, so the claim fails first.
        let mut bytes = vec![0xfc];
        bytes.extend_from_slice(&1_000_000u32.to_le_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
        let e = decode_bounded::<String>(&bytes, 64 * 1024).unwrap_err();
        assert!(e.to_string().contains("LimitExceeded"), "{e}");
        let e = decode_bounded::<String>(&bytes, MAX_VALUE).unwrap_err();
        assert!(e.to_string().contains("UnexpectedEnd"), "{e}");
    }

    #[test]
    fn over_limit_is_refused() {
        let bytes = encode(&vec![0u8; 100]).unwrap();
        assert!(matches!(
            decode_bounded::<Vec<u8>>(&bytes, 10),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
