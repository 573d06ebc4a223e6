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
            let words = close::describe(code);
            if reason.is_empty() || reason == words {
                words.to_string()
            } else {
                format!("{words} ({reason})")
            }
        }
        quinn::ConnectionError::TimedOut => "timed out (no answer within the idle timeout)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(code: u32, reason: &str) -> quinn::ConnectionError {
        quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: code.into(),
            reason: reason.as_bytes().to_vec().into(),
        })
    }

    #[test]
    fn a_close_reason_is_said_once() {
        // The server closes with the code's own words as its reason: said once, not twice.
        assert_eq!(
            describe_connection_error(&closed(close::SHUTDOWN, "server shutting down")),
            "server shutting down"
        );
        assert_eq!(
            describe_connection_error(&closed(close::AUTH, "no enabled virtual server")),
            "authentication failed (no enabled virtual server)"
        );
        assert_eq!(
            describe_connection_error(&closed(close::SHUTDOWN, "")),
            "server shutting down"
        );
    }
}
