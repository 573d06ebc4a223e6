//! Administrator passwords (argon2id) and login sessions.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::model::{Role, UnixMillis};

/// Hashes a password for storage (PHC string). CPU-heavy: call off the async threads.
pub fn hash_password(password: &str) -> Result<String, String> {
    check_password(password)?;
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

/// True if `password` matches the stored hash. CPU-heavy: call off the async threads.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// The floor for administrator passwords.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 8 {
        return Err("a password must be at least 8 characters long".into());
    }
    Ok(())
}

/// A logged-in administrator.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub expires: UnixMillis,
}

/// Sessions by token, in memory: a server restart logs everybody out.
#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn open(&self, session: Session) -> String {
        let token = new_token();
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(token.clone(), session);
        token
    }

    /// The session for `token` if it exists and has not expired; expired ones are dropped.
    pub fn check(&self, token: &str, now: UnixMillis) -> Option<Session> {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        map.get(token).cloned()
    }

    pub fn close(&self, token: &str) {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(token);
    }

    /// Ends every session of `user` (after a password change or the account's deletion).
    pub fn close_user(&self, user: &str) {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.user != user);
    }
}

pub(super) fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse!", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn sessions_expire() {
        let s = Sessions::default();
        let t = s.open(Session {
            user: "a".into(),
            role: Role::Auditor,
            expires: 100,
        });
        assert!(s.check(&t, 99).is_some());
        assert!(s.check(&t, 100).is_none());
        assert!(s.check("nope", 0).is_none());
    }
}
