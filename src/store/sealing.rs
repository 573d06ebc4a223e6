//! Task account passwords, sealed (AES-256-GCM) wherever they are (ARCHITECTURE.md, "Task
//! account passwords"). At rest a node seals them with its own key: a file of its own next to
//! its database, readable by its account only, so a copy of the database alone (a backup, a
//! stolen disk image of the data file) does not reveal them. On a link they are sealed with
//! the link's key, which both ends derive from that connection's TLS session and nobody
//! stores: a node re-seals a password from its key to the link's as it sends it, and from the
//! link's to its own as it receives it. So no stored value and no message ever holds one in
//! clear; it is opened only where it is used, by the agent that runs the task.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::model::link::Change;
use crate::model::task::{SealedSecret, TaskAccount, TaskRecord};

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
        self.seal_for(PURPOSE, plaintext)
    }

    /// Seals a secret of another kind than a task password (`purpose` says which, and a
    /// ciphertext opens only for the same purpose).
    pub fn seal_for(
        &self,
        purpose: &'static [u8],
        plaintext: &str,
    ) -> anyhow::Result<SealedSecret> {
        let mut nonce = [0u8; 12];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut ciphertext = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose),
                &mut ciphertext,
            )
            .map_err(|_| anyhow::anyhow!("cannot seal a secret"))?;
        Ok(SealedSecret { nonce, ciphertext })
    }

    /// A key from 32 bytes: a link's, derived from its TLS session, or a random one for an
    /// in-process link.
    pub fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        let key = UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 takes 32-byte keys");
        SecretKey {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        }
    }

    /// A fresh random key, for a link that has no TLS session (a virtual server's).
    pub fn random() -> anyhow::Result<SecretKey> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("no randomness for a link key"))?;
        Ok(SecretKey::from_bytes(&bytes))
    }

    /// The plaintext: only the agent that runs a task opens its password.
    pub fn open(&self, sealed: &SealedSecret) -> anyhow::Result<String> {
        self.open_for(PURPOSE, sealed)
    }

    /// Opens what [`SecretKey::seal_for`] sealed for `purpose`.
    pub fn open_for(
        &self,
        purpose: &'static [u8],
        sealed: &SealedSecret,
    ) -> anyhow::Result<String> {
        let mut buffer = sealed.ciphertext.clone();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(sealed.nonce),
                Aad::from(purpose),
                &mut buffer,
            )
            .map_err(|_| anyhow::anyhow!("a sealed secret does not open with this server's key"))?;
        Ok(String::from_utf8(plain.to_vec())?)
    }
}

/// Re-seals `sealed` from key `from` to key `to`, without the plaintext leaving this call.
fn reseal(sealed: &SealedSecret, from: &SecretKey, to: &SecretKey) -> anyhow::Result<SealedSecret> {
    to.seal(&from.open(sealed)?)
}

/// Re-seals the password of `account`, if any, from `from` to `to`. One that does not open
/// is dropped (the task then has no password, and its runs say so) and the error returned,
/// for the caller to log: the rest of the message still goes.
pub fn reseal_account(
    account: &mut TaskAccount,
    from: &SecretKey,
    to: &SecretKey,
) -> anyhow::Result<()> {
    let TaskAccount::Specified { name, password } = account else {
        return Ok(());
    };
    let Some(sealed) = password.as_ref() else {
        return Ok(());
    };
    match reseal(sealed, from, to) {
        Ok(resealed) => {
            *password = Some(resealed);
            Ok(())
        }
        Err(e) => {
            *password = None;
            Err(e.context(format!("the password of account {name:?}")))
        }
    }
}

/// Re-seals the password a change of the log carries (a task's upsert), if any.
pub fn reseal_change(
    change: &mut Change<TaskRecord>,
    from: &SecretKey,
    to: &SecretKey,
) -> anyhow::Result<()> {
    match change {
        Change::TaskUpsert { task, .. } => reseal_account(&mut task.settings.account, from, to),
        _ => Ok(()),
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

    #[test]
    fn an_account_is_resealed_from_one_key_to_another() {
        let (rest, link) = (SecretKey::random().unwrap(), SecretKey::random().unwrap());
        let mut account = TaskAccount::Specified {
            name: "svc".into(),
            password: Some(rest.seal("hunter2-planted").unwrap()),
        };
        reseal_account(&mut account, &rest, &link).unwrap();
        let TaskAccount::Specified {
            password: Some(sealed),
            ..
        } = &account
        else {
            panic!("the password was dropped: {account:?}");
        };
        assert_eq!(link.open(sealed).unwrap(), "hunter2-planted");
        assert!(rest.open(sealed).is_err());
        // Sealed with neither key: dropped, and said so.
        let error = reseal_account(&mut account, &rest, &link).unwrap_err();
        assert!(format!("{error:#}").contains("\"svc\""), "{error:#}");
        assert_eq!(
            account,
            TaskAccount::Specified {
                name: "svc".into(),
                password: None
            }
        );
        let mut default = TaskAccount::Default;
        reseal_account(&mut default, &rest, &link).unwrap();
        assert_eq!(default, TaskAccount::Default);
    }
}
