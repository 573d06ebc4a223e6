//! The session file written by `canopy login`: which server (and virtual server), which CA,
//! who the server is (its certificate's fingerprint, and the name if one was given), and the
//! token. Beside it, `known_servers.toml` keeps the fingerprint of every server logged in
//! to, like ssh's known_hosts, across logouts.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::model::Fingerprint;

#[derive(Serialize, Deserialize)]
pub struct SessionFile {
    pub server: SocketAddr,
    /// The virtual server logged in to: every later connection names it in its hello.
    /// Absent in files written before virtual servers existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_server: Option<String>,
    pub ca: PathBuf,
    /// The name the server's certificate must carry (`login --server-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The fingerprint of the server's certificate at login: every later command refuses
    /// another. Absent in files written before it was kept (then only the CA is checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
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
        write_private(path, &toml::to_string(self)?)
    }

    /// Who the server must be on every command of this session.
    pub fn identity(&self) -> anyhow::Result<super::client::ServerIdentity> {
        let fingerprint = self
            .fingerprint
            .as_deref()
            .map(str::parse::<Fingerprint>)
            .transpose()
            .context("the session file's fingerprint is not one: run `canopy login` again")?;
        Ok(super::client::ServerIdentity {
            name: self.server_name.clone(),
            fingerprint,
        })
    }
}

/// The servers logged in to from this session file's directory, by address, with the
/// fingerprint of their certificate: a login without `--fingerprint` or `--server-name`
/// trusts a server it never saw, and refuses one whose certificate changed.
#[derive(Default, Serialize, Deserialize)]
pub struct KnownServers {
    #[serde(default)]
    pub servers: std::collections::BTreeMap<String, String>,
}

impl KnownServers {
    /// Where the known servers of the session at `session` are kept.
    pub fn path_for(session: &Path) -> PathBuf {
        session.with_file_name("known_servers.toml")
    }

    /// The known servers; none if the file does not exist.
    pub fn load(path: &Path) -> anyhow::Result<KnownServers> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("{}: not a file of known servers", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownServers::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The fingerprint known for the server at `addr`.
    pub fn get(&self, addr: SocketAddr) -> anyhow::Result<Option<Fingerprint>> {
        self.servers
            .get(&addr.to_string())
            .map(|text| {
                text.parse()
                    .with_context(|| format!("known server {addr}: {text:?} is not a fingerprint"))
            })
            .transpose()
    }

    pub fn set(&mut self, addr: SocketAddr, fingerprint: Fingerprint) {
        self.servers
            .insert(addr.to_string(), fingerprint.to_string());
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        write_private(path, &toml::to_string(self)?)
    }
}

/// Writes `text` to `path` (replacing it) readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::store::private::create_parent(path)?;
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
            server_name: None,
            fingerprint: Some(Fingerprint([7; 32]).to_string()),
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
        let old = SessionFile::load(&path).unwrap();
        assert_eq!(old.virtual_server, None);
        assert!(old.identity().unwrap().fingerprint.is_none());
    }

    #[test]
    fn known_servers_survive_and_say_what_they_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let path = KnownServers::path_for(&dir.path().join("session.toml"));
        let addr = SocketAddr::from(([127, 0, 0, 1], 13000));
        let mut known = KnownServers::load(&path).unwrap();
        assert_eq!(known.get(addr).unwrap(), None);
        known.set(addr, Fingerprint([9; 32]));
        known.save(&path).unwrap();
        let known = KnownServers::load(&path).unwrap();
        assert_eq!(known.get(addr).unwrap(), Some(Fingerprint([9; 32])));
        std::fs::write(&path, "[servers]\n\"127.0.0.1:13000\" = \"zz\"\n").unwrap();
        let e = KnownServers::load(&path).unwrap().get(addr).unwrap_err();
        assert!(format!("{e:#}").contains("not a fingerprint"), "{e:#}");
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
