//! The checks of the fuzz targets, and the seeds they start from.
//!
//! Each `cargo fuzz` target (`fuzz/fuzz_targets/NAME.rs`) is a thin wrapper over one function
//! of [`TARGETS`]: it hands the function libFuzzer's bytes, and the function feeds them to the
//! decoders that read what a peer, a file or a user sends, exactly as the runtime calls them,
//! and panics when a property fails. `tests/fuzz_corpus.rs` calls the same functions on every
//! file of `fuzz/corpus/NAME/`, on the stable toolchain, so `make test` replays the corpus.
//!
//! Beyond "does not crash", what decodes must re-encode and decode to an equal value that is
//! no longer than the input (the codec is canonical: only varints have longer forms), a
//! value is never decoded from more bytes than the reader's limit, and a frame reader
//! consumes exactly one frame and reads the same frames whether or not its reads are
//! interrupted (see [`links`]). Each target says what else it checks.
//!
//! Compiled only with the `fuzzing` feature: the fuzz crate and the tests turn it on.

mod files;
mod links;
mod requests;
mod samples;
mod seeds;
mod sessions;
mod stored;

use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use serde::{Serialize, de::DeserializeOwned};

use crate::wire::codec::{self, CodecError};

pub use files::{agent_config, device_list, local_edit, selection, server_config, task_export};
pub use links::{admin_link, agent_link, fed_link, hello};
pub use seeds::{Seed, seeds};
pub use stored::store_values;

/// What a target made of its input. Properties that fail panic instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// At least one decoder took the input (a message, a value, a config...).
    Accepted,
    /// Every decoder refused it, as it should refuse garbage.
    Refused,
}

impl Verdict {
    fn of(accepted: bool) -> Verdict {
        if accepted {
            Verdict::Accepted
        } else {
            Verdict::Refused
        }
    }
}

/// A target's check: the input, as libFuzzer or a corpus file gives it.
pub type Check = fn(&[u8]) -> Verdict;

/// Every fuzz target: its name (its file in `fuzz/fuzz_targets/`, its corpus directory in
/// `fuzz/corpus/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("hello", hello),
    ("fed_link", fed_link),
    ("admin_link", admin_link),
    ("agent_link", agent_link),
    ("store_values", store_values),
    ("server_config", server_config),
    ("agent_config", agent_config),
    ("device_list", device_list),
    ("selection", selection),
    ("local_edit", local_edit),
    ("task_export", task_export),
];

/// Decodes `bytes` as one `T` with `limit`, as every reader does (`codec::decode_bounded`),
/// and checks what the codec promises: input over the limit is refused before decoding, and
/// a decoded value re-encodes, no longer than the input, to bytes that decode to an equal
/// value.
fn round_trip<T>(bytes: &[u8], limit: usize) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let (value, again) = decode_and_encode::<T>(bytes, limit)?;
    match codec::decode_bounded::<T>(&again, limit) {
        Ok(back) => assert_eq!(back, value, "a value changed through encode and decode"),
        Err(e) => panic!("the encoding of a decoded value does not decode: {e}; {value:?}"),
    }
    Some(value)
}

/// [`round_trip`] for a type without `PartialEq`: the value decoded again must encode to the
/// same bytes.
fn round_trip_bytes<T>(bytes: &[u8], limit: usize) -> Option<T>
where
    T: Serialize + DeserializeOwned + Debug,
{
    let (value, again) = decode_and_encode::<T>(bytes, limit)?;
    match codec::decode_bounded::<T>(&again, limit) {
        Ok(back) => assert_eq!(
            codec::encode(&back).ok().as_ref(),
            Some(&again),
            "a value changed through encode and decode: {value:?}"
        ),
        Err(e) => panic!("the encoding of a decoded value does not decode: {e}; {value:?}"),
    }
    Some(value)
}

fn decode_and_encode<T>(bytes: &[u8], limit: usize) -> Option<(T, Vec<u8>)>
where
    T: Serialize + DeserializeOwned + Debug,
{
    let cap = limit.min(codec::MAX_VALUE);
    let decoded = codec::decode_bounded::<T>(bytes, limit);
    if bytes.len() > cap {
        assert!(
            matches!(decoded, Err(CodecError::TooLarge { len, limit }) if len == bytes.len() && limit == cap),
            "{} bytes over the limit of {cap} were not refused as too large: {decoded:?}",
            bytes.len()
        );
        return None;
    }
    let value = match decoded {
        Ok(value) => value,
        Err(CodecError::TooLarge { .. }) => {
            panic!(
                "{} bytes within the limit of {cap} refused as too large",
                bytes.len()
            )
        }
        Err(_) => return None,
    };
    let again = match codec::encode(&value) {
        Ok(again) => again,
        Err(e) => panic!("a decoded value does not encode: {e}; {value:?}"),
    };
    assert!(
        again.len() <= bytes.len(),
        "a decoded value re-encodes longer ({} bytes) than its input ({} bytes): {value:?}",
        again.len(),
        bytes.len()
    );
    Some((value, again))
}

/// Polls `future` once: reads from a byte slice are always ready, so it must be done.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a read from a byte slice was pending"),
    }
}

/// The first byte of a target's input picks what the rest is (a message type, a mode); an
/// empty input picks 0 and is empty.
fn split_selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((selector, rest)) => (*selector, rest),
        None => (0, &[]),
    }
}
