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

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_VALUE>,
>;

const fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_VALUE>()
}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
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
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
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
    fn over_limit_is_refused() {
        let bytes = encode(&vec![0u8; 100]).unwrap();
        assert!(matches!(
            decode_bounded::<Vec<u8>>(&bytes, 10),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
