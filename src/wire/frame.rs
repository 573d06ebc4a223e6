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

/// Reads one frame's bytes; `None` at a clean end of stream between frames.
async fn read_raw<R: AsyncRead + Unpin>(
    input: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut len[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    let limit = limit.min(MAX_FRAME);
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    let mut body = vec![0u8; len];
    input
        .read_exact(&mut body)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
    Ok(Some(body))
}

/// Reads and decodes one frame of at most `limit` bytes; `None` at a clean end of stream.
pub async fn read_frame<R, T>(input: &mut R, limit: usize) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    match read_raw(input, limit).await? {
        None => Ok(None),
        Some(body) => Ok(Some(codec::decode_bounded(&body, limit)?)),
    }
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
    let bytes = read_raw(input, limit).await?.ok_or(FrameError::Truncated)?;
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
