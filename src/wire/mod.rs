//! Messages, the codec and framing. The only module that knows how bytes look.

pub mod codec;
