//! Messages, the codec and framing: the only module that knows how bytes look.
//!
//! Every connection starts with a hello on its first bidirectional stream. The hello has a
//! fixed prefix (`CNPY` and a big-endian protocol version) before its encoded body, so two
//! versions of Canopy can always tell each other apart and refuse clearly.

pub mod codec;
pub mod frame;
pub mod msg;

pub use frame::{FrameError, FrameReader, read_frame, read_hello, write_frame, write_hello};

/// Bumped whenever a message changes shape. Peers of another version are refused.
pub const PROTOCOL_VERSION: u32 = 10;

/// The software version, reported to parents and shown in `canopy server list`.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Application error codes used when a connection is closed, so the peer can say why.
pub mod close {
    pub const NORMAL: u32 = 0;
    pub const PROTOCOL: u32 = 1;
    pub const FRAME_TOO_LARGE: u32 = 2;
    pub const VERSION_MISMATCH: u32 = 3;
    pub const NOT_REGISTERED: u32 = 4;
    pub const UNTRUSTED: u32 = 5;
    pub const AUTH: u32 = 6;
    pub const SHUTDOWN: u32 = 7;
    pub const REPLACED: u32 = 8;
    pub const REMOVED: u32 = 9;
    pub const UNSUPPORTED: u32 = 10;
    pub const LIMIT: u32 = 11;
    pub const TIMEOUT: u32 = 12;
    /// The peer did not read what it was sent fast enough; it catches up when it reconnects.
    pub const TOO_SLOW: u32 = 13;
    /// The server cannot do what was asked now (its storage failed); try again later.
    pub const UNAVAILABLE: u32 = 14;
    pub const REVOKED: u32 = 15;

    /// A name for a close code, for messages.
    pub fn describe(code: u64) -> &'static str {
        match code as u32 {
            NORMAL => "closed",
            PROTOCOL => "protocol error",
            FRAME_TOO_LARGE => "frame too large",
            VERSION_MISMATCH => "protocol version mismatch",
            NOT_REGISTERED => "not registered",
            UNTRUSTED => "untrusted certificate",
            AUTH => "authentication failed",
            SHUTDOWN => "server shutting down",
            REPLACED => "replaced by a newer connection",
            REMOVED => "registration removed",
            UNSUPPORTED => "unsupported",
            LIMIT => "server limit reached",
            TIMEOUT => "timed out",
            TOO_SLOW => "too slow to keep up",
            UNAVAILABLE => "temporarily unavailable",
            REVOKED => "certificate revoked",
            _ => "unknown reason",
        }
    }
}
