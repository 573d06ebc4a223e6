//! Length-prefixed frames: a big-endian u32 length, then that many bytes of one encoded value.

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::PROTOCOL_VERSION;
use super::codec::{self, CodecError};

/// The largest frame any peer may send. Bigger payloads must be split by the sender.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

const HELLO_MAGIC: &[u8; 4] = b"CNPY";

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[from] CodecError),
    #[error("stream ended in the middle of a frame")]
    Truncated,
    #[error("not a Canopy hello")]
    NotHello,
    #[error("protocol version mismatch: this side speaks {ours}, the peer {theirs}")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The close code a connection gets when this error ends it.
    pub fn close_code(&self) -> u32 {
        match self {
            FrameError::TooLarge { .. } => super::close::FRAME_TOO_LARGE,
            FrameError::VersionMismatch { .. } => super::close::VERSION_MISMATCH,
            _ => super::close::PROTOCOL,
        }
    }
}

/// Writes one frame. Does not flush a QUIC stream's ACKs; callers never await `stopped()`.
pub async fn write_frame<W, T>(out: &mut W, value: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize + ?Sized,
{
    let body = codec::encode(value)?;
    write_raw(out, &body).await
}

async fn write_raw<W: AsyncWrite + Unpin>(out: &mut W, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len: body.len(),
            limit: MAX_FRAME,
        });
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    out.write_all(&buf).await?;
    Ok(())
}

/// Reads the frames of one stream, keeping a partly read frame between calls.
///
/// [`FrameReader::read_frame`] is cancel safe, so it can be one branch of a `tokio::select!`
/// loop: the length prefix and the part of the body read so far live in the reader, not in
/// the future. The future awaits nothing but `AsyncReadExt::read`, which reads nothing when it
/// is dropped, and records the bytes each read returns before it awaits again. A dropped call
/// therefore loses nothing, and the next call goes on with the same frame. Keep one reader for
/// the stream's whole life.
///
/// It never reads past the end of the frame it returns, so frames read before it existed
/// (the hello) leave the stream in step. A frame's length is checked against the cap (the
/// limit given, at most [`MAX_FRAME`]) before its body is allocated or read, and its body is
/// decoded with the same limit. After an error other than [`FrameError::Malformed`], the
/// stream is out of step and the link must end.
#[derive(Debug)]
pub struct FrameReader {
    limit: usize,
    partial: Partial,
}

/// What a reader holds of the frame it is reading.
#[derive(Debug)]
enum Partial {
    Prefix { bytes: [u8; 4], got: usize },
    Body { bytes: Vec<u8>, got: usize },
}

impl Partial {
    const START: Partial = Partial::Prefix {
        bytes: [0; 4],
        got: 0,
    };
}

impl FrameReader {
    /// A reader of frames of at most `limit` bytes (and never more than [`MAX_FRAME`]).
    pub fn new(limit: usize) -> FrameReader {
        FrameReader {
            limit,
            partial: Partial::START,
        }
    }

    /// Reads and decodes the next frame; `None` at a clean end of stream between frames.
    /// Cancel safe (see [`FrameReader`]).
    pub async fn read_frame<T: DeserializeOwned>(
        &mut self,
        input: &mut (impl AsyncRead + Unpin),
    ) -> Result<Option<T>, FrameError> {
        match self.read_raw(input).await? {
            None => Ok(None),
            Some(body) => Ok(Some(codec::decode_bounded(&body, self.limit)?)),
        }
    }

    /// Reads the next frame's bytes; `None` at a clean end of stream between frames.
    async fn read_raw(
        &mut self,
        input: &mut (impl AsyncRead + Unpin),
    ) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            match &mut self.partial {
                Partial::Prefix { bytes, got } => {
                    match input.read(&mut bytes[*got..]).await? {
                        0 if *got == 0 => return Ok(None),
                        0 => return Err(FrameError::Truncated),
                        n => *got += n,
                    }
                    if *got < bytes.len() {
                        continue;
                    }
                    let len = u32::from_be_bytes(*bytes) as usize;
                    let limit = self.limit.min(MAX_FRAME);
                    if len > limit {
                        return Err(FrameError::TooLarge { len, limit });
                    }
                    self.partial = Partial::Body {
                        bytes: vec![0u8; len],
                        got: 0,
                    };
                }
                Partial::Body { bytes, got } if *got == bytes.len() => {
                    let body = std::mem::take(bytes);
                    self.partial = Partial::START;
                    return Ok(Some(body));
                }
                Partial::Body { bytes, got } => match input.read(&mut bytes[*got..]).await? {
                    0 => return Err(FrameError::Truncated),
                    n => *got += n,
                },
            }
        }
    }
}

/// Reads and decodes one frame of at most `limit` bytes; `None` at a clean end of stream.
///
/// Not cancel safe: a partly read frame is lost with the future. For a stream that carries
/// one frame, or a loop that awaits nothing else; a read in a `select!` uses a [`FrameReader`].
pub async fn read_frame<R, T>(input: &mut R, limit: usize) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    FrameReader::new(limit).read_frame(input).await
}

/// Writes the hello: magic, protocol version, then the encoded body, as one frame.
pub async fn write_hello<W, T>(out: &mut W, body: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(HELLO_MAGIC);
    bytes.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    bytes.extend_from_slice(&codec::encode(body)?);
    write_raw(out, &bytes).await
}

/// Reads the hello and checks the version before decoding anything version-specific.
pub async fn read_hello<R, T>(input: &mut R, limit: usize) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let bytes = FrameReader::new(limit)
        .read_raw(input)
        .await?
        .ok_or(FrameError::Truncated)?;
    parse_hello(&bytes, limit)
}

fn parse_hello<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, FrameError> {
    if bytes.len() < 8 || &bytes[..4] != HELLO_MAGIC {
        return Err(FrameError::NotHello);
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[4..8]);
    let theirs = u32::from_be_bytes(version);
    if theirs != PROTOCOL_VERSION {
        return Err(FrameError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        });
    }
    Ok(codec::decode_bounded(&bytes[8..], limit)?)
}

/// Test support: a hello frame that claims another protocol version.
#[cfg(any(test, feature = "test-support"))]
pub fn hello_bytes_with_version<T: Serialize>(version: u32, body: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(HELLO_MAGIC);
    bytes.extend_from_slice(&version.to_be_bytes());
    bytes.extend_from_slice(&codec::encode(body).unwrap_or_default());
    let mut framed = (bytes.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    framed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &("a".to_string(), 5u32))
            .await
            .unwrap();
        write_frame(&mut buf, &7u64).await.unwrap();
        let mut r = buf.as_slice();
        let a: (String, u32) = read_frame(&mut r, 1024).await.unwrap().unwrap();
        assert_eq!(a, ("a".to_string(), 5));
        assert_eq!(read_frame::<_, u64>(&mut r, 1024).await.unwrap(), Some(7));
        assert_eq!(read_frame::<_, u64>(&mut r, 1024).await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_frame_is_refused_before_reading_it() {
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        let err = read_frame::<_, u64>(&mut r, 1024).await.unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLarge {
                len: 0xffff_ffff,
                limit: 1024
            }
        ));
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let mut r: &[u8] = &[0, 0, 0, 9, 1, 2];
        assert!(matches!(
            read_frame::<_, u64>(&mut r, 1024).await,
            Err(FrameError::Truncated)
        ));
        let mut r: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame::<_, u64>(&mut r, 1024).await,
            Err(FrameError::Truncated)
        ));
    }

    /// Delivers its bytes at most `chunk` at a time, and is not ready before each chunk, so a
    /// read that needs more than one chunk returns `Pending` between them.
    struct Trickle {
        bytes: Vec<u8>,
        pos: usize,
        chunk: usize,
        ready: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if !self.ready {
                self.ready = true;
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            self.ready = false;
            let n = self
                .chunk
                .min(self.bytes.len() - self.pos)
                .min(buf.remaining());
            let pos = self.pos;
            buf.put_slice(&self.bytes[pos..pos + n]);
            self.pos += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        name: String,
        items: Vec<u64>,
    }

    #[tokio::test]
    async fn a_read_interrupted_mid_frame_goes_on_with_the_same_frame() {
        let first = Sample {
            name: "first".into(),
            items: (0..40).map(|i| i * 1000).collect(),
        };
        let second = Sample {
            name: "x".repeat(100),
            items: vec![u64::MAX; 7],
        };
        let mut bytes = Vec::new();
        write_frame(&mut bytes, &first).await.unwrap();
        let second_at = bytes.len();
        write_frame(&mut bytes, &second).await.unwrap();
        let mut input = Trickle {
            bytes,
            pos: 0,
            chunk: 3,
            ready: false,
        };
        // Each turn, the read gets one chunk and then loses the race to a branch that is
        // always ready, as a read does in a device link's select! when an order goes out.
        let mut reader = FrameReader::new(1024);
        let mut read = Vec::new();
        let mut interrupted_at = Vec::new();
        while read.len() < 2 {
            tokio::select! {
                biased;
                frame = reader.read_frame::<Sample>(&mut input) => {
                    read.push(frame.unwrap().expect("a frame"));
                }
                () = std::future::ready(()) => interrupted_at.push(input.pos),
            }
        }
        assert_eq!(read, vec![first, second]);
        // Interrupted inside each length prefix and inside each body.
        for start in [0, second_at] {
            assert!(
                interrupted_at.iter().any(|&p| p > start && p < start + 4),
                "not interrupted in the prefix at {start}: {interrupted_at:?}"
            );
            assert!(
                interrupted_at
                    .iter()
                    .any(|&p| p > start + 4 && p < start + 20),
                "not interrupted in the body at {start}: {interrupted_at:?}"
            );
        }
        assert_eq!(input.pos, input.bytes.len());
        // Then a clean end of stream, between frames.
        assert!(matches!(
            reader.read_frame::<Sample>(&mut input).await,
            Ok(None)
        ));
    }

    #[tokio::test]
    async fn hello_version_mismatch_is_named() {
        let bytes = hello_bytes_with_version(PROTOCOL_VERSION + 1, &"x".to_string());
        let mut r = bytes.as_slice();
        let err = read_hello::<_, String>(&mut r, 1024).await.unwrap_err();
        assert!(
            matches!(err, FrameError::VersionMismatch { theirs, .. } if theirs == PROTOCOL_VERSION + 1)
        );
        let mut good = Vec::new();
        write_hello(&mut good, &"x".to_string()).await.unwrap();
        let mut r = good.as_slice();
        assert_eq!(read_hello::<_, String>(&mut r, 1024).await.unwrap(), "x");
    }

    #[tokio::test]
    async fn garbage_is_not_a_hello() {
        let mut r: &[u8] = &[0, 0, 0, 8, b'G', b'E', b'T', b' ', 1, 2, 3, 4];
        assert!(matches!(
            read_hello::<_, String>(&mut r, 1024).await,
            Err(FrameError::NotHello)
        ));
    }
}
