//! The key a link seals task account passwords with: exported from the connection's TLS
//! session (RFC 8446, section 7.5), so both ends hold the same key, only they can derive it,
//! and it is gone with the connection. Nothing stores it.

/// What the exported key is for, so that it is no other exporter's.
const LABEL: &[u8] = b"EXPORTER-canopy-task-account-seal";

/// The connection's 32-byte link key, the same at both ends.
pub fn link_key(conn: &quinn::Connection) -> Result<[u8; 32], String> {
    let mut key = [0u8; 32];
    conn.export_keying_material(&mut key, LABEL, b"")
        .map_err(|_| "the TLS session exports no keying material".to_string())?;
    Ok(key)
}
