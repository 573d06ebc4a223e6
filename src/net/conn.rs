//! Words for why a QUIC connection or stream ended, for events and error messages.

use crate::wire::close;

/// Says why a connection ended, in words, from the error quinn gave a stream.
pub fn describe_io(e: &std::io::Error) -> String {
    let read = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<quinn::ReadError>());
    if let Some(quinn::ReadError::ConnectionLost(c)) = read {
        return describe_connection_error(c);
    }
    e.to_string()
}

pub fn describe_connection_error(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason);
            let code = c.error_code.into_inner();
            if reason.is_empty() {
                close::describe(code).to_string()
            } else {
                format!("{} ({reason})", close::describe(code))
            }
        }
        quinn::ConnectionError::TimedOut => "timed out (no answer within the idle timeout)".into(),
        other => other.to_string(),
    }
}
