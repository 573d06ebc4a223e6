//! The server's secret key: seals task account passwords at rest (AES-256-GCM). The key is a
//! file of its own next to the database, readable by the server's account only, so a copy of
//! the database alone (a backup, a stolen disk image of the data file) does not reveal them.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::model::task::SealedSecret;

/// What the sealed passwords are bound to, so a ciphertext cannot be reused for another kind
/// of secret.
const PURPOSE: &[u8] = b"canopy task account password";

pub struct SecretKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

/// Where the key of the database `data` lives: `<data>.secret-key`.
pub fn key_path(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".secret-key");
    PathBuf::from(name)
}

impl SecretKey {
    /// Reads the key, or makes one (mode 0600) if the file does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<SecretKey> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
            anyhow::anyhow!(
                "{}: not a secret key (expected 32 bytes, found {})",
                path.display(),
                bytes.len()
            )
        })?;
        Ok(SecretKey {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    pub fn seal(&self, plaintext: &str) -> anyhow::Result<SealedSecret> {
        let mut nonce = [0u8; 12];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut ciphertext = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(PURPOSE),
                &mut ciphertext,
            )
            .map_err(|_| anyhow::anyhow!("cannot seal a secret"))?;
        Ok(SealedSecret { nonce, ciphertext })
    }

    /// The plaintext. Only tests open secrets today: running a device task under the
    /// specified account is not built yet (README).
    #[cfg(test)]
    pub fn open(&self, sealed: &SealedSecret) -> anyhow::Result<String> {
        let mut buffer = sealed.ciphertext.clone();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(sealed.nonce),
                Aad::from(PURPOSE),
                &mut buffer,
            )
            .map_err(|_| anyhow::anyhow!("a sealed secret does not open with this server's key"))?;
        Ok(String::from_utf8(plain.to_vec())?)
    }
}

fn create(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = vec![0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for a secret key"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(&dir.path().join("server.redb"));
        let key = SecretKey::load_or_create(&path).unwrap();
        let sealed = key.seal("hunter2-planted").unwrap();
        assert!(
            !sealed.ciphertext.windows(7).any(|w| w == b"hunter2"),
            "no plaintext in the ciphertext"
        );
        assert_eq!(key.open(&sealed).unwrap(), "hunter2-planted");
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "hunter2-planted");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = SecretKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.open(&sealed).is_err());
    }
}
