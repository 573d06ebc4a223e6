//! The deployment PKI: one CA per deployment, leaf certificates for servers, self-signed
//! identities for device agents. Peers are pinned by the [`Fingerprint`] of their certificate.
//!
//! Files are PEM. Private keys are PKCS#8 and created with mode 0600, so they are never
//! world-readable, not even for the instant between creation and a later `chmod`.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::model::Fingerprint;

/// File name of the CA certificate inside a PKI directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a PKI directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// Certificates start this long in the past so that a peer whose clock is slightly behind
/// does not reject a freshly issued certificate as "not yet valid".
const CLOCK_SKEW: Duration = Duration::hours(1);
/// Device identities are never renewed by anyone, so they outlive any reasonable deployment.
const DEVICE_VALIDITY_DAYS: u32 = 20 * 365;
/// SAN used for a device whose name is not a DNS name; `.invalid` can never resolve.
const DEVICE_PLACEHOLDER_SAN: &str = "device.canopy.invalid";
/// X.520 upper bound for a common name.
const MAX_COMMON_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    // Not `source`: the message says the I/O error, and a chain would say it twice.
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("{0} already exists; refusing to overwrite")]
    Exists(PathBuf),
    #[error("{path}: malformed PEM: {source}")]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}: no certificate found")]
    NoCertificate(PathBuf),
    #[error("{0}: no private key found")]
    NoKey(PathBuf),
    #[error("malformed PEM: {0}")]
    PemText(rustls_pki_types::pem::Error),
    #[error("expected exactly one PEM certificate, found {0}")]
    CertificateCount(usize),
    #[error("{path}: not usable as the CA: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("{0}: this key does not belong to the CA certificate next to it")]
    KeyMismatch(PathBuf),
    #[error("certificate generation failed: {0}")]
    Rcgen(String),
    #[error(
        "invalid node name {0:?}: use 1 to 64 characters of A-Z a-z 0-9 . _ - \
         (and not \"ca\", which names the CA files)"
    )]
    BadName(String),
    #[error("invalid subject alternative name {0:?}: neither an IP address nor a DNS name")]
    BadSan(String),
    #[error("invalid validity of {0} days: must be at least 1 and end before year 10000")]
    BadValidity(u32),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Rcgen(e.to_string())
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |cause| PkiError::Io {
        path: path.to_owned(),
        cause,
    }
}

/// Where `init_ca` put the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub fingerprint: Fingerprint,
}

/// Where `issue_server` put a server's certificate and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub fingerprint: Fingerprint,
}

/// Creates the deployment CA in `dir` (`ca.pem`, `ca.key`); never replaces an existing one,
/// because every certificate of the deployment chains to it.
pub fn init_ca(dir: &Path, common_name: &str, validity_days: u32) -> Result<CaPaths, PkiError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    create_dir(dir)?;
    refuse_existing(&[&cert_path, &key_path])?;

    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = validity(validity_days)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;

    write_pair(&cert_path, &cert.pem(), &key_path, &key.serialize_pem())?;
    Ok(CaPaths {
        cert: cert_path,
        key: key_path,
        fingerprint: Fingerprint::of(cert.der()),
    })
}

/// Issues `dir/<name>.pem` and `dir/<name>.key` for server node `name`, signed by the CA in
/// `dir`. The certificate serves both ends of a server-to-server link (ServerAuth + ClientAuth).
pub fn issue_server(
    dir: &Path,
    name: &str,
    extra_sans: &[String],
    validity_days: u32,
) -> Result<IssuedPaths, PkiError> {
    check_node_name(name)?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    refuse_existing(&[&cert_path, &key_path])?;
    let ca = load_ca(dir)?;

    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(name);
    params.subject_alt_names = std::iter::once(name)
        .chain(extra_sans.iter().map(String::as_str))
        .map(parse_san)
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity(validity_days)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    ca.check_issued(cert.der())?;

    write_pair(&cert_path, &cert.pem(), &key_path, &key.serialize_pem())?;
    Ok(IssuedPaths {
        cert: cert_path,
        key: key_path,
        fingerprint: Fingerprint::of(cert.der()),
    })
}

/// A fresh self-signed identity for a device agent. Servers identify devices by the
/// certificate's fingerprint, so the names in it are informational only.
pub fn self_signed_device(
    common_name: &str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_dn(&sanitize_common_name(common_name));
    let san = match DnsName::try_from(common_name) {
        Ok(_) => common_name,
        Err(_) => DEVICE_PLACEHOLDER_SAN,
    };
    params.subject_alt_names = vec![SanType::DnsName(san.try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    (params.not_before, params.not_after) = validity(DEVICE_VALIDITY_DAYS)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key = PrivatePkcs8KeyDer::from(key.serialize_der());
    Ok((cert.into(), key.into()))
}

/// All certificates of a PEM file, in file order (leaf first for a chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = fs::read(path).map_err(io_error(path))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PkiError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PkiError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The one certificate in `pem` text (e.g. pasted by an operator); more than one is an error
/// because the caller would otherwise have to guess which is meant.
pub fn parse_single_cert_pem(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(PkiError::PemText)?;
    match certs.len() {
        1 => Ok(certs.remove(0)),
        n => Err(PkiError::CertificateCount(n)),
    }
}

/// The first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let pem = fs::read(path).map_err(io_error(path))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => PkiError::NoKey(path.to_owned()),
        source => PkiError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

/// Writes a new file, refusing to replace an existing one. A `secret` file is created with
/// mode 0600, so it is never readable by others.
pub fn write_pem_file(path: &Path, pem: &str, secret: bool) -> Result<(), PkiError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => PkiError::Exists(path.to_owned()),
        _ => io_error(path)(e),
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            // The file is ours (create_new); a truncated one would block every retry.
            let _ = fs::remove_file(path);
            io_error(path)(e)
        })
}

/// Writes a key, then its certificate; if the certificate cannot be written the key is
/// removed again so that a retry does not trip over a half-created pair.
fn write_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
) -> Result<(), PkiError> {
    write_pem_file(key_path, key_pem, true)?;
    write_pem_file(cert_path, cert_pem, false).inspect_err(|_| {
        let _ = fs::remove_file(key_path);
    })
}

/// Checked up front so that nothing is written when either file of a pair is present.
fn refuse_existing(paths: &[&Path]) -> Result<(), PkiError> {
    for path in paths {
        if fs::symlink_metadata(path).is_ok() {
            return Err(PkiError::Exists(path.to_path_buf()));
        }
    }
    Ok(())
}

/// Creates the PKI directory (mode 0700 where it is new: it holds private keys).
fn create_dir(dir: &Path) -> Result<(), PkiError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_error(dir))
}

/// `[not_before, not_after]` for a certificate issued now.
fn validity(days: u32) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    let now = OffsetDateTime::now_utc();
    let not_after = Some(days)
        .filter(|&d| d > 0)
        .and_then(|d| now.checked_add(Duration::days(i64::from(d))))
        .ok_or(PkiError::BadValidity(days))?;
    let not_before = now
        .checked_sub(CLOCK_SKEW)
        .ok_or(PkiError::BadValidity(days))?;
    Ok((not_before, not_after))
}

fn common_name_dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Node names become file names and DNS SANs, hence the strict alphabet.
pub fn check_node_name(name: &str) -> Result<(), PkiError> {
    let alphabet_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if alphabet_ok && (1..=64).contains(&name.len()) && name != "ca" {
        Ok(())
    } else {
        Err(PkiError::BadName(name.to_owned()))
    }
}

fn parse_san(san: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = san.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = || PkiError::BadSan(san.to_owned());
    DnsName::try_from(san).map_err(|_| bad())?;
    Ok(SanType::DnsName(san.try_into().map_err(|_| bad())?))
}

/// Device names come from hostnames or users: drop control characters and keep within
/// the X.520 length limit rather than failing enrolment over a cosmetic field.
fn sanitize_common_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_COMMON_NAME)
        .collect();
    match clean.trim() {
        "" => "canopy-device".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

/// The CA as loaded from disk, ready to sign.
struct LoadedCa {
    cert_path: PathBuf,
    /// Raw DER subject of the CA certificate (without the outer SEQUENCE).
    subject: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// Loads `ca.pem` and `ca.key`, and checks that the key is the certificate's.
fn load_ca(dir: &Path) -> Result<LoadedCa, PkiError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let cert = load_certs(&cert_path)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::NoCertificate(cert_path.clone()))?;
    let key = KeyPair::try_from(&load_key(&key_path)?)?;
    let bad_ca = |reason: String| PkiError::BadCa {
        path: cert_path.clone(),
        reason,
    };
    let anchor = webpki::anchor_from_trusted_cert(&cert).map_err(|e| bad_ca(e.to_string()))?;
    if webpki::spki_for_anchor(&anchor).as_ref() != key.subject_public_key_info() {
        return Err(PkiError::KeyMismatch(key_path));
    }
    let subject = anchor.subject.to_vec();
    let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|e| bad_ca(e.to_string()))?;
    Ok(LoadedCa {
        cert_path,
        subject,
        issuer,
    })
}

impl LoadedCa {
    /// Chain building compares names byte for byte, so a leaf whose issuer field differs
    /// from the CA's subject in any way would never verify; refuse to write such a leaf.
    fn check_issued(&self, leaf: &CertificateDer<'_>) -> Result<(), PkiError> {
        let leaf = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| PkiError::Rcgen(format!("issued certificate does not parse: {e}")))?;
        if leaf.issuer() == self.subject.as_slice() {
            Ok(())
        } else {
            Err(PkiError::BadCa {
                path: self.cert_path.clone(),
                reason: "its subject name cannot be reproduced exactly".to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tls::CaVerifier;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn ca_and_server_issuance() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let ca = init_ca(&pki, "Test Deployment CA", 365).unwrap();
        let server = issue_server(
            &pki,
            "node-1.example",
            &["10.0.0.1".into(), "alt.example".into()],
            30,
        )
        .unwrap();

        for path in [&ca.cert, &ca.key, &server.cert, &server.key] {
            assert!(path.is_file(), "{}", path.display());
        }
        #[cfg(unix)]
        {
            assert_eq!(mode(&ca.key), 0o600);
            assert_eq!(mode(&server.key), 0o600);
        }
        let ca_certs = load_certs(&ca.cert).unwrap();
        assert_eq!(Fingerprint::of(&ca_certs[0]), ca.fingerprint);
        let chain = load_certs(&server.cert).unwrap();
        assert_eq!(chain.len(), 1);
        assert_eq!(Fingerprint::of(&chain[0]), server.fingerprint);
        load_key(&server.key).unwrap();

        CaVerifier::new(&ca_certs)
            .unwrap()
            .verify_client_chain(&chain)
            .unwrap();

        let other = tempfile::tempdir().unwrap();
        let other_ca = init_ca(other.path(), "Other CA", 365).unwrap();
        let other_roots = load_certs(&other_ca.cert).unwrap();
        assert!(
            CaVerifier::new(&other_roots)
                .unwrap()
                .verify_client_chain(&chain)
                .is_err()
        );
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "CA", 10).unwrap();
        assert!(matches!(
            init_ca(dir.path(), "CA", 10),
            Err(PkiError::Exists(_))
        ));
        issue_server(dir.path(), "n1", &[], 10).unwrap();
        assert!(matches!(
            issue_server(dir.path(), "n1", &[], 10),
            Err(PkiError::Exists(_))
        ));

        // A stray key alone is enough to refuse, and nothing is written next to it.
        let lonely = tempfile::tempdir().unwrap();
        fs::write(lonely.path().join(CA_KEY_FILE), "x").unwrap();
        assert!(matches!(
            init_ca(lonely.path(), "CA", 10),
            Err(PkiError::Exists(_))
        ));
        assert!(!lonely.path().join(CA_CERT_FILE).exists());
    }

    #[test]
    fn refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "CA", 10).unwrap();
        let too_long = "a".repeat(65);
        for name in ["", "ca", "a/b", "../x", "node 1", "nöde", too_long.as_str()] {
            assert!(
                matches!(
                    issue_server(dir.path(), name, &[], 10),
                    Err(PkiError::BadName(_))
                ),
                "{name:?}"
            );
        }
        assert!(matches!(
            issue_server(dir.path(), "n1", &["bad name".into()], 10),
            Err(PkiError::BadSan(_))
        ));
        assert!(matches!(
            issue_server(dir.path(), "n1", &[], 0),
            Err(PkiError::BadValidity(0))
        ));
        assert!(matches!(
            issue_server(dir.path(), "n1", &[], u32::MAX),
            Err(PkiError::BadValidity(_))
        ));
        assert!(!dir.path().join("n1.key").exists());
    }

    #[test]
    fn issuing_needs_matching_ca_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path(), "CA", 10).unwrap();
        fs::remove_file(&ca.key).unwrap();
        write_pem_file(&ca.key, &KeyPair::generate().unwrap().serialize_pem(), true).unwrap();
        assert!(matches!(
            issue_server(dir.path(), "n1", &[], 10),
            Err(PkiError::KeyMismatch(_))
        ));

        let empty = tempfile::tempdir().unwrap();
        let err = issue_server(empty.path(), "n1", &[], 10).unwrap_err();
        assert!(err.to_string().contains(CA_CERT_FILE), "{err}");
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        fs::write(&path, "no pem here\n").unwrap();
        assert!(matches!(load_certs(&path), Err(PkiError::NoCertificate(_))));
        assert!(matches!(load_key(&path), Err(PkiError::NoKey(_))));
        let missing = dir.path().join("missing.pem");
        let err = load_certs(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

    #[test]
    fn single_cert_from_text() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(dir.path(), "CA", 10).unwrap();
        let pem = fs::read_to_string(&ca.cert).unwrap();
        let cert = parse_single_cert_pem(&pem).unwrap();
        assert_eq!(Fingerprint::of(&cert), ca.fingerprint);
        let two = format!("{pem}{pem}");
        assert!(matches!(
            parse_single_cert_pem(&two),
            Err(PkiError::CertificateCount(2))
        ));
        assert!(matches!(
            parse_single_cert_pem(""),
            Err(PkiError::CertificateCount(0))
        ));
    }

    #[test]
    fn device_identity() {
        let (cert, key) = self_signed_device("laptop-7").unwrap();
        let parsed = webpki::EndEntityCert::try_from(&cert).unwrap();
        assert_eq!(parsed.valid_dns_names().collect::<Vec<_>>(), ["laptop-7"]);
        assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));

        let (cert, _) = self_signed_device("Ann's PC\n\u{7}").unwrap();
        let parsed = webpki::EndEntityCert::try_from(&cert).unwrap();
        assert_eq!(
            parsed.valid_dns_names().collect::<Vec<_>>(),
            [DEVICE_PLACEHOLDER_SAN]
        );
        assert_eq!(sanitize_common_name("Ann's PC\n\u{7}"), "Ann's PC");
        assert_eq!(sanitize_common_name("\t"), "canopy-device");
    }
}
