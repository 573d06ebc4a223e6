//! The session file written by `canopy login`: which server, which CA, and the token.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct SessionFile {
    pub server: SocketAddr,
    pub ca: PathBuf,
    pub user: String,
    pub token: String,
    pub expires: i64,
}

pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".canopy").join("session.toml")
}

impl SessionFile {
    pub fn load(path: &Path) -> anyhow::Result<SessionFile> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("no session at {}: run `canopy login` first", path.display())
        })?;
        toml::from_str(&text).with_context(|| format!("{}: not a session file", path.display()))
    }

    /// Writes the file readable by its owner only: the token is as good as the password.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = toml::to_string(self)?;
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(text.as_bytes())?;
        Ok(())
    }
}

pub fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
