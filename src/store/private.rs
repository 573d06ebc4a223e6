//! Files and directories that hold state or secrets are for their owner only: files 0600,
//! directories 0700, whatever the process's umask. Databases (server, virtual servers, agent,
//! backups), the server's secret key, the CLI's session and the configs a deployment writes
//! all go through here (keys and certificates go through `net::pki`, which does the same).

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of every file of state or secrets.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every directory this process creates for state or secrets.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parent, each new one with mode 0700. Directories that exist
/// already are left as they are (they may be shared, such as `/var/lib`).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    Ok(())
}

/// [`create_dir_all`] for the directory `path` is in.
pub fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => create_dir_all(dir),
        None => Ok(()),
    }
}

/// Makes sure `path` exists as a file with mode 0600: a new file is created so, an existing
/// one (written by an older version, or copied in) is tightened. Its contents are untouched.
pub fn claim_file(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    restrict(path)
}

/// Sets the mode of an existing file to 0600.
pub fn restrict(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, Permissions::from_mode(FILE_MODE))
}

/// Opens a new file, mode 0600, for reading and writing; fails if `path` exists.
pub fn create_new(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Writes `bytes` to `path` (created or replaced), mode 0600.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    // An existing file keeps its mode through open(); tighten it before the bytes go in.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_files_end_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), DIR_MODE);
        assert_eq!(mode(&nested), DIR_MODE);

        let old = nested.join("old");
        fs::write(&old, b"kept").unwrap();
        fs::set_permissions(&old, Permissions::from_mode(0o644)).unwrap();
        claim_file(&old).unwrap();
        assert_eq!(mode(&old), FILE_MODE);
        assert_eq!(fs::read(&old).unwrap(), b"kept");

        let config = nested.join("config");
        fs::write(&config, b"x").unwrap();
        write(&config, b"token").unwrap();
        assert_eq!(mode(&config), FILE_MODE);
        assert_eq!(fs::read(&config).unwrap(), b"token");

        let fresh = nested.join("fresh");
        drop(create_new(&fresh).unwrap());
        assert_eq!(mode(&fresh), FILE_MODE);
        assert!(create_new(&fresh).is_err());
    }
}
