//! The session file written by `canopy login`: which server (and virtual server), which CA,
//! and the token.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct SessionFile {
    pub server: SocketAddr,
    /// The virtual server logged in to: every later connection names it in its hello.
    /// Absent in files written before virtual servers existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_server: Option<String>,
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
        crate::store::private::create_parent(path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(virtual_server: Option<&str>) -> SessionFile {
        SessionFile {
            server: SocketAddr::from(([127, 0, 0, 1], 13000)),
            virtual_server: virtual_server.map(str::to_string),
            ca: PathBuf::from("/etc/canopy/ca.pem"),
            user: "admin".into(),
            token: "t".into(),
            expires: 1,
        }
    }

    #[test]
    fn the_virtual_server_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.toml");
        for vserver in [None, Some("tenant-a")] {
            session(vserver).save(&path).unwrap();
            let loaded = SessionFile::load(&path).unwrap();
            assert_eq!(loaded.virtual_server.as_deref(), vserver);
            assert_eq!(loaded.server, session(None).server);
        }
        // A file written before virtual servers existed still loads.
        std::fs::write(
            &path,
            "server = \"127.0.0.1:13000\"\nca = \"ca.pem\"\nuser = \"a\"\ntoken = \"t\"\nexpires = 1\n",
        )
        .unwrap();
        assert_eq!(SessionFile::load(&path).unwrap().virtual_server, None);
    }

    #[test]
    fn the_session_and_its_new_directory_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".canopy/session.toml");
        session(None).save(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join(".canopy")), 0o700);
    }
}
