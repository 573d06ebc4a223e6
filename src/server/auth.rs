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

/// Password hashing on threads of its own, with a short queue: argon2 takes 19 MiB and tens
/// of milliseconds a password, and must never run on the pool that serves store reads, nor
/// pile up without bound during a flood of logins.
pub struct PasswordPool {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashing jobs that may wait; beyond that a login is answered "busy" at once.
const QUEUED_JOBS: usize = 16;

/// Every thread of the pool is busy and its queue is full.
#[derive(Debug, thiserror::Error)]
#[error("the server is busy checking other passwords; try again in a moment")]
pub struct Busy;

impl PasswordPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<PasswordPool> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(QUEUED_JOBS);
        let queue = std::sync::Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("canopy-passwords-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(PasswordPool { jobs })
    }

    /// Runs `work` on the pool, or refuses at once if its queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs.try_send(job).map_err(|_| Busy)?;
        result.await.map_err(|_| Busy)
    }

    /// [`verify_password`] on the pool.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, Busy> {
        self.run(move || verify_password(&password, &stored)).await
    }

    /// [`hash_password`] on the pool.
    pub async fn hash(&self, password: String) -> Result<Result<String, String>, Busy> {
        self.run(move || hash_password(&password)).await
    }
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
    pub fn open(&self, session: Session, now: UnixMillis) -> String {
        let token = new_token();
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        // A login is rare next to the requests it serves; this is where the expired go.
        map.retain(|_, s| s.expires > now);
        map.insert(token.clone(), session);
        token
    }

    /// The session for `token` if it exists and has not expired. One lookup: expired
    /// sessions are dropped when they are found and when a session is opened.
    pub fn check(&self, token: &str, now: UnixMillis) -> Option<Session> {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(token) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
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

    #[tokio::test]
    async fn the_pool_checks_passwords_and_refuses_what_it_cannot_queue() {
        let pool = std::sync::Arc::new(PasswordPool::new(1).unwrap());
        let hash = pool.hash("correct horse".into()).await.unwrap().unwrap();
        assert!(
            pool.verify("correct horse".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify("wrong horse!".into(), hash.clone())
                .await
                .unwrap()
        );
        // Far more at once than one thread and its queue hold: some are refused at once.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..4 * QUEUED_JOBS {
            let (pool, hash) = (pool.clone(), hash.clone());
            set.spawn(async move { pool.verify("wrong horse!".into(), hash).await });
        }
        let (mut checked, mut busy) = (0, 0);
        while let Some(answer) = set.join_next().await {
            match answer.unwrap() {
                Ok(ok) => {
                    assert!(!ok);
                    checked += 1;
                }
                Err(Busy) => busy += 1,
            }
        }
        assert!(checked >= QUEUED_JOBS, "{checked} checked");
        assert!(busy > 0, "none refused");
    }

    #[test]
    fn sessions_expire() {
        let s = Sessions::default();
        let t = s.open(
            Session {
                user: "a".into(),
                role: Role::Auditor,
                expires: 100,
            },
            0,
        );
        assert!(s.check(&t, 99).is_some());
        assert!(s.check(&t, 100).is_none());
        assert!(s.check("nope", 0).is_none());
    }
}
