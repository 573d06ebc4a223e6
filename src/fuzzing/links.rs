//! The links' decoders: the hellos (`wire::read_hello`) and the frames of each link, read
//! by the real `wire::FrameReader` from a byte slice, or decoded alone by
//! `codec::decode_bounded`, with the caps the runtime reads them with.
//!
//! The first byte of an input picks the message type and the mode; the rest is what the peer
//! sent on the stream (see [`link`]).

use std::fmt::Debug;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, ReadBuf};

use super::{Verdict, ready, round_trip, sessions, split_selector};
use crate::wire::frame::MAX_FRAME;
use crate::wire::msg::{
    AdminCall, AdminHello, AdminResponse, AdminWelcome, AgentHello, AgentToServer, ChildHello,
    ChildMsg, ParentMsg, ServerToAgent,
};
use crate::wire::{self, FrameError, FrameReader, PROTOCOL_VERSION};

// The caps the runtime reads each message with (kept in step with the readers named).

/// `server::fed`: a secondary's hello, and the parent's welcome read by the secondary.
pub(super) const FED_HELLO: usize = 64 * 1024;
/// `server::fed`: the frames of a federation link, both ways.
pub(super) const FED_FRAME: usize = MAX_FRAME;
/// `server::admin`: an administrator's hello and each request.
pub(super) const ADMIN_REQUEST: usize = 256 * 1024;
/// `cli::client`: the welcome and each response.
pub(super) const ADMIN_RESPONSE: usize = MAX_FRAME;
/// `server::agents` and `agent::link`: a device's hello and the frames both ways.
pub(super) const AGENT_FRAME: usize = 1024 * 1024;

/// How many frames of one input are read at most.
const MAX_FRAMES: usize = 64;

/// Selector bit: decode the rest as one value with `codec::decode_bounded`, not as a stream.
pub(super) const RAW: u8 = 0b100;

/// Hellos, as each server reads them: selector % 3 picks the ALPN (federation, admin,
/// agent); the rest is the stream. Checks: a hello is read from exactly its frame, the frame
/// is within the cap, starts `CNPY` and this protocol version, and its body round-trips; each
/// refusal names what is wrong with the bytes.
pub fn hello(data: &[u8]) -> Verdict {
    let (selector, stream) = split_selector(data);
    Verdict::of(match selector % 3 {
        0 => read_hello::<ChildHello>(stream, FED_HELLO),
        1 => read_hello::<AdminHello>(stream, ADMIN_REQUEST),
        _ => read_hello::<AgentHello>(stream, AGENT_FRAME),
    })
}

/// The federation link: selector & 3 picks what is read: 0 the parent's messages (read by
/// the secondary), 1 and 3 the secondary's (read by the parent), 2 the parent's welcome
/// (read with the hello's cap). See [`values`] for the rest. What is read then goes to the
/// session of the end that reads it (see [`sessions`]).
pub fn fed_link(data: &[u8]) -> Verdict {
    let (selector, rest) = split_selector(data);
    let limit = match selector & 3 {
        2 => FED_HELLO,
        _ => FED_FRAME,
    };
    Verdict::of(match selector & 1 {
        0 => {
            let messages = values::<ParentMsg>(selector, rest, limit);
            let read = !messages.is_empty();
            sessions::secondary_takes(messages);
            read
        }
        _ => {
            let messages = values::<ChildMsg>(selector, rest, limit);
            let read = !messages.is_empty();
            sessions::parent_takes(messages);
            read
        }
    })
}

/// The admin link: selector & 3 picks 0 and 3 a request (read by the server), 1 a
/// response, 2 the welcome (read by the CLI). A request also names itself (`name()`, used
/// for the audit trail before anything is checked).
pub fn admin_link(data: &[u8]) -> Verdict {
    let (selector, rest) = split_selector(data);
    Verdict::of(match selector & 3 {
        1 => link::<AdminResponse>(selector, rest, ADMIN_RESPONSE),
        2 => link::<AdminWelcome>(selector, rest, ADMIN_RESPONSE),
        _ => {
            let calls = values::<AdminCall>(selector, rest, ADMIN_REQUEST);
            for call in &calls {
                assert!(!call.request.name().is_empty());
            }
            !calls.is_empty()
        }
    })
}

/// The device link: selector & 1 picks 0 what a device sends (read by the server), 1 what
/// the server sends (read by the agent).
pub fn agent_link(data: &[u8]) -> Verdict {
    let (selector, rest) = split_selector(data);
    Verdict::of(match selector & 1 {
        0 => link::<AgentToServer>(selector, rest, AGENT_FRAME),
        _ => link::<ServerToAgent>(selector, rest, AGENT_FRAME),
    })
}

/// Whether [`values`] read any.
fn link<T>(selector: u8, rest: &[u8], limit: usize) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    !values::<T>(selector, rest, limit).is_empty()
}

/// The `T`s in `rest`. With [`RAW`] in the selector, `rest` is one value, decoded with the
/// link's cap (and refused with a cap one byte short). Otherwise `rest` is a stream of frames,
/// read twice by a `FrameReader`: at once, and a few bytes at a time (1 + selector >> 4)
/// with every read interrupted between them, as a read that loses a `select!` race is
/// dropped. Both must read the same frames and stop at the same error (cancel safety).
fn values<T>(selector: u8, rest: &[u8], limit: usize) -> Vec<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    if selector & RAW != 0 {
        if let Some(short) = rest.len().checked_sub(1) {
            assert!(round_trip::<T>(rest, short).is_none());
        }
        return round_trip::<T>(rest, limit).into_iter().collect();
    }
    let plain = read_at_once::<T>(rest, limit);
    let chunk = 1 + usize::from(selector >> 4);
    let interrupted = read_interrupted::<T>(rest, limit, chunk);
    assert_eq!(
        plain, interrupted,
        "frames read at once and read {chunk} bytes at a time with interruptions differ"
    );
    plain
        .into_iter()
        .filter_map(|read| match read {
            Read::Value(value) => Some(value),
            _ => None,
        })
        .collect()
}

/// What one `read_frame` gave, comparable.
#[derive(Debug, PartialEq)]
enum Read<T> {
    Value(T),
    Malformed,
    TooLarge { len: usize, limit: usize },
    Truncated,
    End,
}

impl<T> Read<T> {
    /// After these the stream is out of step, or over: the link ends.
    fn ends(&self) -> bool {
        !matches!(self, Read::Value(_) | Read::Malformed)
    }
}

fn summary<T: Debug>(result: Result<Option<T>, FrameError>) -> Read<T> {
    match result {
        Ok(Some(value)) => Read::Value(value),
        Ok(None) => Read::End,
        Err(FrameError::Malformed(_)) => Read::Malformed,
        Err(FrameError::TooLarge { len, limit }) => Read::TooLarge { len, limit },
        Err(FrameError::Truncated) => Read::Truncated,
        Err(other) => panic!("a frame read from a byte slice failed with {other}"),
    }
}

fn prefix(bytes: &[u8]) -> usize {
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(len) as usize
}

/// Reads frames from `stream` at once, checking each read against the bytes it took: a frame
/// is its length prefix and that many bytes, within the cap, and the reader decodes it
/// exactly as `codec::decode_bounded` does.
fn read_at_once<T>(stream: &[u8], limit: usize) -> Vec<Read<T>>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let cap = limit.min(MAX_FRAME);
    let mut reader = FrameReader::new(limit);
    let mut input = stream;
    let mut out = Vec::new();
    while out.len() < MAX_FRAMES {
        let at = stream.len() - input.len();
        let read = summary(ready(reader.read_frame::<T>(&mut input)));
        let used = stream.len() - input.len() - at;
        let left = stream.len() - at;
        match &read {
            Read::End => assert_eq!(left, 0, "end of stream reported with {left} bytes left"),
            Read::Truncated => assert!(
                input.is_empty() && left < 4 + stream[at..].get(..4).map_or(0, prefix),
                "a frame reported truncated with its bytes there"
            ),
            Read::TooLarge { len, limit } => {
                assert_eq!(used, 4, "a frame over the cap was read beyond its prefix");
                assert_eq!(*len, prefix(&stream[at..]));
                assert!(*len > cap && *limit == cap, "{len} is within the cap {cap}");
            }
            Read::Value(_) | Read::Malformed => {
                let len = prefix(&stream[at..]);
                assert_eq!(used, 4 + len, "a frame of {len} bytes took {used} bytes");
                assert!(len <= cap, "a frame of {len} bytes over the cap {cap}");
                let direct = round_trip::<T>(&stream[at + 4..at + used], limit);
                match &read {
                    Read::Value(value) => assert_eq!(direct.as_ref(), Some(value)),
                    _ => assert!(direct.is_none(), "the reader refused what the codec takes"),
                }
            }
        }
        let ends = read.ends();
        out.push(read);
        if ends {
            break;
        }
    }
    out
}

/// Reads frames from `stream` as a link does whose read is one branch of a `select!` that
/// keeps losing: each read future gets at most one `chunk` of bytes and is then dropped.
fn read_interrupted<T: DeserializeOwned + Debug>(
    stream: &[u8],
    limit: usize,
    chunk: usize,
) -> Vec<Read<T>> {
    let mut reader = FrameReader::new(limit);
    let mut input = Trickle {
        bytes: stream,
        chunk,
        ready: false,
    };
    let mut out = Vec::new();
    // Every other poll delivers a chunk; a frame ends the future early.
    let most = 2 * (stream.len() / chunk + 1) + 2 * MAX_FRAMES + 4;
    for _ in 0..most {
        let mut read = pin!(reader.read_frame::<T>(&mut input));
        let Poll::Ready(result) = read.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        else {
            // Dropped: the other branch of the select! won.
            continue;
        };
        let read = summary(result);
        let ends = read.ends();
        out.push(read);
        if ends || out.len() == MAX_FRAMES {
            return out;
        }
    }
    panic!("the interrupted reader made no progress after {most} polls");
}

/// Delivers its bytes at most `chunk` at a time, and is pending before each chunk.
struct Trickle<'a> {
    bytes: &'a [u8],
    chunk: usize,
    ready: bool,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        let n = self.chunk.min(self.bytes.len()).min(buf.remaining());
        let (now, later) = self.bytes.split_at(n);
        buf.put_slice(now);
        self.bytes = later;
        Poll::Ready(Ok(()))
    }
}

/// Reads a hello with `wire::read_hello` and checks it against the bytes.
fn read_hello<T>(stream: &[u8], limit: usize) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let cap = limit.min(MAX_FRAME);
    let mut input = stream;
    let result = ready(wire::read_hello::<_, T>(&mut input, limit));
    let used = stream.len() - input.len();
    let frame = || {
        let len = prefix(stream);
        assert_eq!(used, 4 + len, "a hello of {len} bytes took {used} bytes");
        assert!(len <= cap, "a hello of {len} bytes over the cap {cap}");
        &stream[4..used]
    };
    let version = |frame: &[u8]| u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    match result {
        Ok(hello) => {
            let frame = frame();
            assert_eq!(&frame[..4], b"CNPY");
            assert_eq!(version(frame), PROTOCOL_VERSION);
            assert_eq!(round_trip::<T>(&frame[8..], limit).as_ref(), Some(&hello));
            true
        }
        Err(FrameError::NotHello) => {
            let frame = frame();
            assert!(frame.len() < 8 || &frame[..4] != b"CNPY", "a hello refused");
            false
        }
        Err(FrameError::VersionMismatch { ours, theirs }) => {
            let frame = frame();
            assert_eq!(&frame[..4], b"CNPY");
            assert_eq!(ours, PROTOCOL_VERSION);
            assert_eq!(theirs, version(frame));
            assert_ne!(theirs, PROTOCOL_VERSION);
            false
        }
        Err(FrameError::Malformed(_)) => {
            let frame = frame();
            assert!(round_trip::<T>(&frame[8..], limit).is_none());
            false
        }
        Err(FrameError::TooLarge { len, limit }) => {
            assert_eq!(used, 4);
            assert!(len > cap && limit == cap && len == prefix(stream));
            false
        }
        Err(FrameError::Truncated) => {
            assert!(input.is_empty());
            false
        }
        Err(FrameError::Io(e)) => panic!("reading a hello from a byte slice failed: {e}"),
    }
}
