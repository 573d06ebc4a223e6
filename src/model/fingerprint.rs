//! SHA-256 fingerprints of certificates: how servers and devices pin and name their peers.

use std::fmt;
use std::str::FromStr;

/// SHA-256 of a DER certificate: how a peer is pinned and identified.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

/// 32 bytes in binary formats (the wire, the store); 64 hex digits in JSON, as people and
/// the CLI write it.
impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(Fingerprint)
        }
    }
}

impl schemars::JsonSchema for Fingerprint {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Fingerprint".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "SHA-256 of a DER certificate, in hex"
        })
    }
}

impl Fingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert_der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A string that is not a SHA-256 fingerprint.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid fingerprint {0:?}: expected 64 hex digits, optionally prefixed by \"sha256:\" \
     and optionally with ':' between bytes"
)]
pub struct ParseFingerprintError(String);

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    /// Accepts `ab12…` (as canopy prints it), `AB:12:…` (as openssl prints it) and either
    /// form prefixed by `sha256:`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || ParseFingerprintError(s.to_owned());
        let hex = strip_prefix_ignore_case(s.trim(), "sha256:");
        let pairs: Vec<&str> = if hex.contains(':') {
            hex.split(':').collect()
        } else {
            // Index-based chunking would split multi-byte characters; reject them first.
            if !hex.is_ascii() {
                return Err(error());
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| &hex[i..(i + 2).min(hex.len())])
                .collect()
        };
        let mut bytes = [0; 32];
        if pairs.len() != bytes.len() {
            return Err(error());
        }
        for (byte, pair) in bytes.iter_mut().zip(pairs) {
            *byte = parse_hex_byte(pair).ok_or_else(error)?;
        }
        Ok(Fingerprint(bytes))
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> &'a str {
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &s[prefix.len()..],
        _ => s,
    }
}

/// Exactly two hex digits; `u8::from_str_radix` alone would also accept "+f" or "f".
fn parse_hex_byte(pair: &str) -> Option<u8> {
    if pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(pair, 16).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_in_json_and_32_bytes_in_bincode() {
        let fp = Fingerprint::of(b"a certificate");
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, format!("\"{fp}\""));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
        assert!(serde_json::from_str::<Fingerprint>("\"abc\"").is_err());
        let binary = bincode::serde::encode_to_vec(fp, bincode::config::standard()).unwrap();
        assert_eq!(binary, fp.0.to_vec());
        let (back, _): (Fingerprint, usize) =
            bincode::serde::decode_from_slice(&binary, bincode::config::standard()).unwrap();
        assert_eq!(back, fp);
    }

    #[test]
    fn fingerprint_round_trip() {
        let fp = Fingerprint::of(b"not really a certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);

        let colons =
            fp.0.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
        assert_eq!(colons.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("sha256:{text}").parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(
            format!("SHA256:{colons}").parse::<Fingerprint>().unwrap(),
            fp
        );
    }

    #[test]
    fn fingerprint_rejects_garbage() {
        let good = Fingerprint::of(b"x").to_string();
        for bad in [
            String::new(),
            "sha256:".to_owned(),
            good[..62].to_owned(),
            format!("{good}00"),
            format!("{}zz", &good[..62]),
            format!("{}+f", &good[..62]),
            format!("{}é", &good[..62]),
            format!("md5:{good}"),
            format!("{}:{}", &good[..2], &good[2..]),
        ] {
            let err = bad.parse::<Fingerprint>().unwrap_err();
            assert!(err.to_string().contains("64 hex digits"), "{bad:?}: {err}");
        }
    }
}
